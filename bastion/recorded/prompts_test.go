package recorded

import (
	"bytes"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

type fakeSession struct{ glssh.Session }

func (fakeSession) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5555} }

type fakeChannel struct {
	gossh.Channel
	out bytes.Buffer
}

func (c *fakeChannel) Write(p []byte) (int, error) { return c.out.Write(p) }

// The target's keyboard-interactive prompts are shown on the user's
// terminal; answers are read with line editing, echoed only when the target
// asks for echo, never audited; keys typed ahead go on to the session.
func TestRelayPrompts(t *testing.T) {
	var audited []map[string]any
	p, err := New(Options{Dir: t.TempDir(), UserCA: newSigner(t), Audit: func(ev string, f map[string]any) {
		if ev == EventTargetPrompt {
			audited = append(audited, f)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ch := &fakeChannel{}
	s := &session{p: p, sess: fakeSession{}, raw: ch, user: "alice", target: Target{Name: "db1"}, hasPty: true,
		in: &userInput{r: strings.NewReader("12\x7f3456\rbob\r\nls\r")}}
	answers, err := s.relayPrompts()("PAM", "Second factor for db1", []string{"Code: ", "Name: "}, []bool{false, true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(answers, []string{"13456", "bob"}) {
		t.Errorf("answers %q", answers)
	}
	shown := ch.out.String()
	if !strings.Contains(shown, "Second factor for db1\r\n") || !strings.Contains(shown, "Code: ") || !strings.Contains(shown, "Name: bob\r\n") || strings.Contains(shown, "3456") {
		t.Errorf("terminal showed %q", shown)
	}
	if rest := string(s.in.head); rest != "ls\r" {
		t.Errorf("typed ahead %q, want \"ls\\r\"", rest)
	}
	if len(audited) != 1 || strings.Contains(fmt.Sprint(audited[0]), "13456") || audited[0]["user"] != "alice" {
		t.Errorf("audit %v", audited)
	}

	t.Run("no terminal", func(t *testing.T) {
		s := &session{p: p, sess: fakeSession{}, raw: &fakeChannel{}, in: &userInput{r: strings.NewReader("x\r")}}
		if _, err := s.relayPrompts()("", "", []string{"Password: "}, []bool{false}); err == nil {
			t.Error("asked without a terminal")
		}
	})
	t.Run("ctrl-c", func(t *testing.T) {
		s := &session{p: p, sess: fakeSession{}, raw: &fakeChannel{}, hasPty: true, in: &userInput{r: strings.NewReader("12\x03")}}
		if _, err := s.relayPrompts()("", "", []string{"Password: "}, []bool{false}); err == nil {
			t.Error("Ctrl-C did not abort")
		}
	})
	t.Run("too many rounds", func(t *testing.T) {
		s := &session{p: p, sess: fakeSession{}, raw: &fakeChannel{}, hasPty: true, in: &userInput{r: strings.NewReader(strings.Repeat("a\r", 10))}}
		relay := s.relayPrompts()
		var err error
		for i := 0; i <= maxPromptRounds && err == nil; i++ {
			_, err = relay("", "", []string{"Again: "}, []bool{true})
		}
		if err == nil {
			t.Error("endless prompting was not cut off")
		}
	})
}
