package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/bastion"
)

const userUsage = `usage: bastion user <verb> [NAME] [flags]

verbs:
  add NAME --key FILE --totp|--duo [--force]  enrol (--force: replace a user it enrolled)
  list                       users, state, factor, TOTP, recovery codes left
  disable NAME               refuse every login, keep keys and secrets
  enable NAME                undo disable
  remove NAME                delete the user, TOTP secret and recovery codes
  reset-totp NAME            new TOTP secret (QR, URI) and new recovery codes

Every verb takes --config FILE. The running bastion picks changes up
within seconds: no restart, no signal`

func cmdUser(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(userUsage)
	}
	verb, args := args[0], args[1:]
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") && verb != "list" {
		args = append([]string{"NAME"}, args...) // NAME comes first; --help needs none
	}
	switch verb {
	case "add":
		return cmdUserAdd(args)
	case "list":
		return cmdUserList(args)
	case "disable", "enable", "remove", "reset-totp":
		return cmdUserChange(verb, args)
	case "-h", "--help", "help":
		fmt.Println(userUsage)
		return nil
	}
	return fmt.Errorf("user: unknown verb %q\n%s", verb, userUsage)
}

// userName takes NAME off the front of args: it comes before the flags.
func userName(verb string, args []string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, fmt.Errorf("user %s: NAME comes first: bastion user %s alice --config FILE", verb, verb)
	}
	return args[0], args[1:], nil
}

func cmdUserAdd(args []string) error {
	name, args, err := userName("add", args)
	if err != nil {
		return errors.New("user add: NAME comes first: bastion user add alice --key alice.pub --totp")
	}
	fs := newFlags("user add", "user add NAME --key FILE [--totp] [--duo] [--force] [--group G]... [--target T]...")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml")
	key := fs.String("key", "", "authorized_keys file with the user's public key(s)")
	totp := fs.Bool("totp", false, "enrol a TOTP secret and print its otpauth URI and QR code")
	duo := fs.Bool("duo", false, "use Duo as second factor (with --totp: either)")
	force := fs.Bool("force", false, "replace a user that \"user add\" enrolled before (new keys, TOTP secret, recovery codes)")
	noQR := fs.Bool("no-qr", false, "do not draw the QR code")
	var groups, targets listFlag
	fs.Var(&groups, "group", "group membership (repeatable)")
	fs.Var(&targets, "target", "allowed target name or HOSTPATTERN:PORTS (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*totp && !*duo {
		return errors.New("user add: choose a second factor: --totp, --duo or both")
	}
	cfg, err := bastion.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	return bastion.AddUser(cfg, bastion.AddUserRequest{Name: name, KeyFile: *key, TOTP: *totp, Duo: *duo,
		Groups: groups, Targets: targets, QR: !*noQR, Force: *force}, os.Stdout)
}

func cmdUserList(args []string) error {
	fs := newFlags("user list", "user list [--config FILE]")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := bastion.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	users, err := bastion.ListUsers(cfg)
	if err != nil {
		return err
	}
	bastion.WriteUserList(os.Stdout, users)
	return nil
}

func cmdUserChange(verb string, args []string) error {
	name, args, err := userName(verb, args)
	if err != nil {
		return err
	}
	fs := newFlags("user "+verb, "user "+verb+" NAME [--config FILE]")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml")
	var noQR *bool
	if verb == "reset-totp" {
		noQR = fs.Bool("no-qr", false, "do not draw the QR code")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := bastion.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	switch verb {
	case "disable", "enable":
		return bastion.SetUserDisabled(cfg, name, verb == "disable", os.Stdout)
	case "remove":
		return bastion.RemoveUser(cfg, name, os.Stdout)
	default:
		return bastion.ResetTOTP(cfg, name, !*noQR, os.Stdout)
	}
}

// reloadPoll is how often "bastion serve" looks for changed users.
const reloadPoll = 2 * time.Second

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
