package bastion

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/rampart-sec/rampart/bastion/mfa"
	"github.com/rampart-sec/rampart/pkg/atomicfile"
	"github.com/rampart-sec/rampart/pkg/config"
)

// The user lifecycle ("bastion user ..."): users enrolled by "user add"
// live one per file in users_dir and are managed by these functions; the
// running server notices the change within seconds (it watches the config
// file and users_dir, see [Config.Stamp]) and applies it to new logins.
// Users written in the main config file are listed but edited by hand.

// UserFromDir reports whether name was read from users_dir.
func (c *Config) UserFromDir(name string) bool { return c.fromDir[name] }

// DisabledUsers lists the users with disabled: true.
func (c *Config) DisabledUsers() []string {
	var out []string
	for n := range c.disabled {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// UserInfo is one line of "bastion user list".
type UserInfo struct {
	Name         string
	FromDir      bool // users_dir (else the main config file)
	Disabled     bool
	SecondFactor string
	Keys         int
	Principals   int
	TOTP         bool // a TOTP secret is enrolled
	RecoveryLeft int  // unused recovery codes
	Groups       []string
	Targets      []string
}

// ListUsers lists every user, enabled or not, by name.
func ListUsers(cfg *Config) ([]UserInfo, error) {
	store, err := mfa.NewTOTPStore(cfg.Path(cfg.TOTP.SecretDir), nil)
	if err != nil {
		return nil, err
	}
	var out []UserInfo
	add := func(name string, u *UserConfig, disabled bool) {
		f := u.SecondFactor
		if f == "" {
			f = FactorTOTP
		}
		out = append(out, UserInfo{Name: name, FromDir: cfg.UserFromDir(name), Disabled: disabled, SecondFactor: f,
			Keys: len(u.Keys), Principals: len(u.Principals), TOTP: store.Has(name), RecoveryLeft: store.RecoveryCodesLeft(name),
			Groups: u.Groups, Targets: u.Targets})
	}
	for n, u := range cfg.Users {
		add(n, u, false)
	}
	for n, u := range cfg.disabled {
		add(n, u, true)
	}
	slices.SortFunc(out, func(a, b UserInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// WriteUserList prints users as a table.
func WriteUserList(w io.Writer, users []UserInfo) {
	fmt.Fprintf(w, "%-16s %-8s %-6s %4s %-4s %8s  %s\n", "USER", "STATE", "FACTOR", "KEYS", "TOTP", "RECOVERY", "FROM")
	for _, u := range users {
		state, totp, from := "enabled", "-", "config"
		if u.Disabled {
			state = "disabled"
		}
		if u.TOTP {
			totp = "yes"
		}
		if u.FromDir {
			from = "users_dir"
		}
		keys := fmt.Sprint(u.Keys)
		if u.Principals > 0 {
			keys += "+c" // certificates too
		}
		fmt.Fprintf(w, "%-16s %-8s %-6s %4s %-4s %8d  %s\n", u.Name, state, u.SecondFactor, keys, totp, u.RecoveryLeft, from)
	}
}

// managed returns the users_dir file of a user "user add" enrolled, or
// an error saying why name cannot be managed.
func managed(cfg *Config, verb, name string) (string, error) {
	if !mfa.ValidUserName(name) {
		return "", fmt.Errorf("bastion: user %s: invalid name %q", verb, name)
	}
	_, enabled := cfg.Users[name]
	if !enabled && cfg.disabled[name] == nil {
		return "", fmt.Errorf("bastion: user %s: no user %q", verb, name)
	}
	if !cfg.UserFromDir(name) {
		return "", fmt.Errorf("bastion: user %s: %s is defined in the main config file; edit it there", verb, name)
	}
	return filepath.Join(cfg.Path(cfg.UsersDir), name+".yaml"), nil
}

// SetUserDisabled disables (every login refused) or enables a user that
// "user add" enrolled, keeping keys, secret and recovery codes.
func SetUserDisabled(cfg *Config, name string, disabled bool, w io.Writer) error {
	verb := map[bool]string{true: "disable", false: "enable"}[disabled]
	path, err := managed(cfg, verb, name)
	if err != nil {
		return err
	}
	var u UserConfig
	if err := config.Load(path, &u); err != nil {
		return err
	}
	if u.Disabled == disabled {
		fmt.Fprintf(w, "user %s is already %sd\n", name, verb)
		return nil
	}
	u.Disabled = disabled
	if err := writeUserFile(path, name, u); err != nil {
		return fmt.Errorf("bastion: user %s: %w", verb, err)
	}
	fmt.Fprintf(w, "user %s %sd (%s)\n", name, verb, path)
	return nil
}

// RemoveUser deletes a user "user add" enrolled: the users_dir file, the
// TOTP secret and the recovery codes.
func RemoveUser(cfg *Config, name string, w io.Writer) error {
	path, err := managed(cfg, "remove", name)
	if err != nil {
		return err
	}
	store, err := mfa.NewTOTPStore(cfg.Path(cfg.TOTP.SecretDir), nil)
	if err != nil {
		return err
	}
	// The policy file first: once it is gone no login of name can start.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bastion: user remove: %w", err)
	}
	if err := store.Remove(name); err != nil {
		return fmt.Errorf("bastion: user remove: %w", err)
	}
	fmt.Fprintf(w, "user %s removed (%s, TOTP secret, recovery codes)\n", name, path)
	return nil
}

// ResetTOTP gives a user a new TOTP secret (a lost or replaced phone) and
// new recovery codes, printing the otpauth URI, the QR code (qr) and the
// codes. The old secret and codes stop working at once.
func ResetTOTP(cfg *Config, name string, qr bool, w io.Writer) error {
	u := cfg.Users[name]
	if u == nil {
		u = cfg.disabled[name]
	}
	if !mfa.ValidUserName(name) || u == nil {
		return fmt.Errorf("bastion: user reset-totp: no user %q", name)
	}
	if u.SecondFactor == FactorDuo {
		return fmt.Errorf("bastion: user reset-totp: %s uses Duo only (second_factor: duo); re-add with --totp to change that", name)
	}
	store, err := mfa.NewTOTPStore(cfg.Path(cfg.TOTP.SecretDir), nil)
	if err != nil {
		return err
	}
	if err := enrolTOTP(cfg, store, name, qr, w); err != nil {
		return err
	}
	return issueRecoveryCodes(store, name, w)
}

func writeUserFile(path, name string, u UserConfig) error {
	data, err := yaml.Marshal(u)
	if err != nil {
		return err
	}
	header := "# " + name + ": written by `bastion user`\n"
	return atomicfile.WriteFile(path, append([]byte(header), data...), atomicfile.Options{Mode: 0o644, UID: -1, GID: -1})
}

// Stamp summarises what the policy is built from (the config file at
// path and users_dir's *.yaml: names, sizes, modification times), so a
// server can reload when it changes.
func (c *Config) Stamp(path string) string {
	var b strings.Builder
	stat := func(p string) {
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
		}
	}
	stat(path)
	if c.UsersDir != "" {
		dir := c.Path(c.UsersDir)
		stat(dir)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".yaml") {
				stat(filepath.Join(dir, e.Name()))
			}
		}
	}
	return b.String()
}

// Reload applies a reloaded config's users, groups and targets to new
// logins (sessions already open keep going), and returns how many users
// may log in.
func (s *Server) Reload(c *Config) (int, error) {
	p, err := NewPolicy(c)
	if err != nil {
		return 0, err
	}
	s.SetPolicy(p)
	s.setDisabled(c)
	return len(p.UserNames()), nil
}

func (s *Server) setDisabled(c *Config) {
	m := map[string]bool{}
	for _, n := range c.DisabledUsers() {
		m[n] = true
	}
	s.disabled.Store(&m)
}

// isDisabled: refused with "user disabled" in the audit, not "unknown".
func (s *Server) isDisabled(user string) bool {
	m := s.disabled.Load()
	return m != nil && (*m)[user]
}
