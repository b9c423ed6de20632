package mfa_test

import (
	"fmt"
	"os"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/rampart-sec/rampart/bastion/mfa"
)

func ExampleTOTPStore() {
	dir, _ := os.MkdirTemp("", "totp")
	defer os.RemoveAll(dir)
	store, _ := mfa.NewTOTPStore(dir, nil)
	key, _ := store.Enroll("Rampart bastion", "alice") // show key.URL() as a QR code

	code, _ := totp.GenerateCode(key.Secret(), time.Now()) // what the phone shows
	fmt.Println(store.Check("alice", code))
	fmt.Println(store.Check("alice", code)) // the same code twice
	// Output:
	// <nil>
	// mfa: code already used
}

func ExampleParseAnswer() {
	fmt.Printf("%+v\n", mfa.ParseAnswer("123 456"))
	fmt.Printf("%+v\n", mfa.ParseAnswer(""))
	// Output:
	// {Kind:1 Code:123456}
	// {Kind:2 Code:}
}
