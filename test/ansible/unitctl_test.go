package ansible_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// unitctl is what the roles call as rampart_service_command when no init
// runs units (CI's network namespaces): it starts a daemon from the
// installed unit's own ExecStart= line, as its User= with its
// AmbientCapabilities=, so the unit that ships is the unit that runs.
// Timers are not emulated; the test runs their services with "run".
//
//	unitctl --run-dir DIR start|restart|reload|stop|run UNIT_FILE [INSTANCE]
//
// The test binary is unitctl when called by that name (see TestMain).
func unitctl(args []string) int {
	if len(args) >= 2 && args[0] == "--run-dir" {
		os.Setenv("UNITCTL_RUN_DIR", args[1])
		args = args[2:]
	}
	runDir := os.Getenv("UNITCTL_RUN_DIR")
	if runDir == "" || len(args) < 2 || len(args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: unitctl --run-dir DIR start|restart|reload|stop|run UNIT_FILE [INSTANCE]")
		return 2
	}
	verb, file, instance := args[0], args[1], ""
	if len(args) == 3 {
		instance = args[2]
	}
	if err := unitctlDo(runDir, verb, file, instance); err != nil {
		fmt.Fprintf(os.Stderr, "unitctl %s %s: %v\n", verb, file, err)
		return 1
	}
	return 0
}

// unit is the part of a systemd service unit unitctl honours.
type unit struct {
	execStart    []string
	execStartPre [][]string
	user, group  string
	supplGroups  []string
	ambient      []string
	env          []string
}

func unitctlDo(runDir, verb, file, instance string) error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	name := filepath.Base(file)
	if instance != "" {
		name = strings.Replace(name, "@.", "@"+instance+".", 1)
	}
	if strings.HasSuffix(file, ".timer") {
		// The timer's service is what matters; the test runs it.
		fmt.Println("timer (not emulated)")
		return nil
	}
	pidFile := filepath.Join(runDir, name+".pid")
	logFile := filepath.Join(runDir, name+".log")
	u, err := parseUnit(file, instance)
	if err != nil {
		return err
	}
	switch verb {
	case "start":
		if pid := alive(pidFile); pid > 0 {
			fmt.Println("active", pid)
			return nil
		}
		return startUnit(u, pidFile, logFile)
	case "restart":
		stopUnit(pidFile)
		return startUnit(u, pidFile, logFile)
	case "reload":
		if pid := alive(pidFile); pid > 0 {
			fmt.Println("reloaded", pid)
			return syscall.Kill(pid, syscall.SIGHUP)
		}
		return startUnit(u, pidFile, logFile)
	case "stop":
		stopUnit(pidFile)
		fmt.Println("stopped")
		return nil
	case "run":
		for _, pre := range u.execStartPre {
			if err := u.command(pre, os.Stdout, os.Stderr).Run(); err != nil {
				return fmt.Errorf("ExecStartPre %v: %w", pre, err)
			}
		}
		return u.command(u.execStart, os.Stdout, os.Stderr).Run()
	}
	return fmt.Errorf("unknown verb %q", verb)
}

func alive(pidFile string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	// A zombie or a reused pid is not our daemon.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || strings.Contains(string(stat), ") Z ") {
		return 0
	}
	return pid
}

func stopUnit(pidFile string) {
	pid := alive(pidFile)
	if pid == 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && alive(pidFile) > 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pidFile) > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	os.Remove(pidFile)
}

func startUnit(u *unit, pidFile, logFile string) error {
	for _, pre := range u.execStartPre {
		if out, err := u.command(pre, nil, nil).CombinedOutput(); err != nil {
			return fmt.Errorf("ExecStartPre %v: %w: %s", pre, err, out)
		}
	}
	logf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := u.command(u.execStart, logf, logf)
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		b, _ := os.ReadFile(logFile)
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		return fmt.Errorf("%v exited at once: %v\n%s", u.execStart, err, b)
	case <-time.After(300 * time.Millisecond):
	}
	fmt.Println("started", pid)
	return nil
}

// command builds the process as systemd would start it: the unit's user,
// group, supplementary groups and ambient capabilities, its environment.
func (u *unit) command(argv []string, stdout, stderr *os.File) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, u.env...)
	cmd.Dir = "/"
	if stdout != nil {
		cmd.Stdout, cmd.Stderr = stdout, stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if u.user != "" {
		cmd.SysProcAttr.Credential = u.credential()
		for _, c := range u.ambient {
			if n, ok := capNumbers[c]; ok {
				cmd.SysProcAttr.AmbientCaps = append(cmd.SysProcAttr.AmbientCaps, n)
			}
		}
	}
	return cmd
}

var capNumbers = map[string]uintptr{"CAP_DAC_READ_SEARCH": 2, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12}

func (u *unit) credential() *syscall.Credential {
	usr, err := user.Lookup(u.user)
	if err != nil {
		return nil
	}
	uid, _ := strconv.Atoi(usr.Uid)
	gid, _ := strconv.Atoi(usr.Gid)
	if u.group != "" {
		if g, err := user.LookupGroup(u.group); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	for _, name := range u.supplGroups {
		// A group this machine lacks (systemd-journal without systemd)
		// is left out, as systemd would fail instead; CI has no journal.
		if g, err := user.LookupGroup(name); err == nil {
			n, _ := strconv.Atoi(g.Gid)
			c.Groups = append(c.Groups, uint32(n))
		}
	}
	return c
}

// parseUnit reads the [Service] section of a unit file, with %i and %%
// resolved and EnvironmentFile= and Environment= read, and the command
// lines split the way systemd splits them.
func parseUnit(path, instance string) (*unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := &unit{}
	var section string
	var execStart, pres []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section = line
			continue
		}
		if section != "[Service]" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE: %q", path, n, line)
		}
		v, err := specifiers(strings.TrimSpace(v), instance)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		switch strings.TrimSpace(k) {
		case "ExecStart":
			execStart = append(execStart, v)
		case "ExecStartPre":
			pres = append(pres, v)
		case "User":
			u.user = v
		case "Group":
			u.group = v
		case "SupplementaryGroups":
			u.supplGroups = append(u.supplGroups, strings.Fields(v)...)
		case "AmbientCapabilities":
			u.ambient = append(u.ambient, strings.Fields(v)...)
		case "Environment":
			words, err := splitWords(v, nil)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			u.env = append(u.env, words...)
		case "EnvironmentFile":
			optional := strings.HasPrefix(v, "-")
			env, err := readEnvFile(strings.TrimPrefix(v, "-"))
			if err != nil && !(optional && errors.Is(err, os.ErrNotExist)) {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			u.env = append(u.env, env...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(execStart) != 1 {
		return nil, fmt.Errorf("%s: want exactly one ExecStart=, have %d", path, len(execStart))
	}
	lookup := func(name string) (string, bool) {
		for i := len(u.env) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(u.env[i], "="); k == name {
				return v, true
			}
		}
		return "", false
	}
	var err2 error
	if u.execStart, err2 = splitWords(strings.TrimLeft(execStart[0], "-@+!:"), lookup); err2 != nil {
		return nil, fmt.Errorf("%s: ExecStart: %w", path, err2)
	}
	for _, p := range pres {
		w, err := splitWords(strings.TrimLeft(p, "-@+!:"), lookup)
		if err != nil {
			return nil, fmt.Errorf("%s: ExecStartPre: %w", path, err)
		}
		u.execStartPre = append(u.execStartPre, w)
	}
	return u, nil
}

func specifiers(v, instance string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 == len(v) {
			return "", fmt.Errorf("lone %% at the end of %q", v)
		}
		i++
		switch v[i] {
		case '%':
			b.WriteByte('%')
		case 'i', 'I':
			b.WriteString(instance)
		default:
			return "", fmt.Errorf("specifier %%%c not emulated in %q", v[i], v)
		}
	}
	return b.String(), nil
}

// splitWords splits a command line as systemd does: whitespace, "..." and
// '...' quoting, backslash escapes, ${VAR} as one word, $VAR split into
// words, $$ a literal dollar. lookup nil leaves variables alone.
func splitWords(s string, lookup func(string) (string, bool)) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case quote == 0 && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '$' && lookup != nil && i+1 < len(s) && s[i+1] == '$':
			cur.WriteByte('$')
			inWord = true
			i++
		case c == '$' && lookup != nil && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ${ in %q", s)
			}
			v, _ := lookup(s[i+2 : i+end])
			cur.WriteString(v)
			inWord = true
			i += end
		case c == '$' && lookup != nil && quote == 0 && !inWord:
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			v, _ := lookup(s[i+1 : j])
			words = append(words, strings.Fields(v)...)
			i = j - 1
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed %c in %q", quote, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// readEnvFile reads KEY=VALUE lines, with VALUE optionally in single or
// double quotes (what the roles write with Ansible's quote filter).
func readEnvFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env []string
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE", path, n+1)
		}
		words, err := splitWords(v, nil)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n+1, err)
		}
		env = append(env, strings.TrimSpace(k)+"="+strings.Join(words, " "))
	}
	return env, nil
}
