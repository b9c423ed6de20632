package listfile_test

import (
	"fmt"
	"strings"

	"github.com/rampart-sec/rampart/pkg/listfile"
)

func ExampleParse() {
	drop := `; Spamhaus DROP List
1.10.16.0/20 ; SBL256894
192.0.2.7
0.0.0.0/0 ; a typo that would block everything
`
	res, err := listfile.Parse(strings.NewReader(drop), "drop.txt", listfile.Options{})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Prefixes)
	for _, r := range res.Rejected {
		fmt.Println(r)
	}
	// Output:
	// [1.10.16.0/20 192.0.2.7/32]
	// drop.txt:4: prefix /0 is broader than /8 (this source does not allow broad prefixes): "0.0.0.0/0 ; a typo that would block everything"
}
