package asciicast_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
)

func ExampleNewWriter() {
	var sb strings.Builder
	w, err := asciicast.NewWriter(&sb, asciicast.Header{Width: 80, Height: 24, User: "alice", Target: "db1"},
		asciicast.WriterOptions{FlushInterval: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	w.Output([]byte("hello\r\n"))
	w.Resize(100, 40)
	w.Close()
	rd, _ := asciicast.NewReader(strings.NewReader(sb.String()))
	fmt.Println(rd.Header.User, rd.Header.Target, rd.Header.Width)
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		fmt.Printf("%s %q\n", ev.Code, ev.Data)
	}
	// Output:
	// alice db1 80
	// o "hello\r\n"
	// r "100x40"
}

func ExamplePlay() {
	rec := "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.01, \"o\", \"hello \"]\n[0.02, \"o\", \"world\\n\"]\n"
	rd, err := asciicast.NewReader(strings.NewReader(rec))
	if err != nil {
		fmt.Println(err)
		return
	}
	asciicast.Play(context.Background(), os.Stdout, rd, asciicast.PlayOptions{Speed: 10})
	// Output: hello world
}
