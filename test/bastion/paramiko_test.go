package bastion_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// paramikoLogin logs in with the key, then answers the keyboard-interactive
// round with the code, then jumps (direct-tcpip) to the target and reads
// its SSH banner. paramiko sends a new SERVICE_REQUEST before each method:
// x/crypto disconnected at the second one until third_party/x/crypto.
const paramikoLogin = `
import sys, paramiko
host, port, user, keyfile, code, thost, tport = sys.argv[1:8]
key = paramiko.Ed25519Key.from_private_key_file(keyfile)
t = paramiko.Transport((host, int(port)))
t.start_client(timeout=20)
left = t.auth_publickey(user, key)
print("after key:", ",".join(left))
def answer(title, instructions, fields):
    print("instructions:", instructions.replace("\n", "|"))
    for f in fields:
        print("prompt:", f[0])
    return [code for _ in fields]
try:
    t.auth_interactive(user, answer)
except paramiko.AuthenticationException as e:
    print("refused:", e)
    sys.exit(3)
print("authenticated:", t.is_authenticated())
ch = t.open_channel("direct-tcpip", (thost, int(tport)), ("127.0.0.1", 0), timeout=20)
ch.settimeout(20)
print("banner:", ch.recv(64).decode(errors="replace").strip())
ch.close()
t.close()
`

// paramiko runs Debian's python3 with python3-paramiko (not a pyenv
// python on PATH, which lacks it).
func (w *bstWorld) paramiko(user, code string) (string, error) {
	w.t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		testenv.Need(w.t, "Debian's /usr/bin/python3 (test/install.sh installs python3-paramiko)")
	}
	if err := exec.Command(py, "-c", "import paramiko").Run(); err != nil {
		testenv.Need(w.t, "python3-paramiko (test/install.sh installs it)")
	}
	script := filepath.Join(w.Dir, "paramiko_login.py")
	if err := os.WriteFile(script, []byte(paramikoLogin), 0o644); err != nil {
		w.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(w.Addr)
	thost, tport, _ := net.SplitHostPort(w.Target.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, script, host, port, user, w.KeyPath, code, thost, tport).CombinedOutput()
	return string(out), err
}

// TestParamikoKeyAndTOTP: paramiko, as Fabric, Netmiko and Ansible use
// it, logs in with key + TOTP and jumps; a wrong code is still refused.
func TestParamikoKeyAndTOTP(t *testing.T) {
	w := bstNewWorld(t, bstSetup{Users: []*bstUser{{Name: "carol"}, {Name: "dave"}}})

	t.Run("key and TOTP, then a jump", func(t *testing.T) {
		out, err := w.paramiko("carol", w.totp("carol"))
		if err != nil || !strings.Contains(out, "authenticated: True") || !strings.Contains(out, "banner: SSH-2.0-") {
			t.Fatalf("paramiko login: %v\n%s", err, out)
		}
		if !strings.Contains(out, "after key: keyboard-interactive") {
			t.Errorf("after the key the bastion should ask for keyboard-interactive only:\n%s", out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "carol", "method": "totp", "result": "success"})
		w.waitRecord(map[string]any{"type": "jump", "user": "carol", "result": "success"})
	})

	t.Run("wrong code is refused", func(t *testing.T) {
		bad := fmt.Sprintf("%06d", (mustAtoi(t, w.totp("dave"))+500000)%1000000)
		out, err := w.paramiko("dave", bad)
		if err == nil || strings.Contains(out, "authenticated: True") || !strings.Contains(out, "refused:") {
			t.Fatalf("paramiko with a wrong code: %v\n%s", err, out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "dave", "method": "totp", "result": "failure"})
	})
}
