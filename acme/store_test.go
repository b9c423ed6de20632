package acme

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSigned returns a key and certificate for names, valid for life.
func selfSigned(t testing.TB, notBefore time.Time, life time.Duration, names ...string) Pair {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: names[0]},
		DNSNames:       names,
		NotBefore:      notBefore,
		NotAfter:       notBefore.Add(life),
		AuthorityKeyId: []byte{1, 2, 3, 4},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return Pair{
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
}

func testOutput(t testing.TB, dir string) Output {
	o := Output{Key: filepath.Join(dir, "links", "x.key"), FullChain: filepath.Join(dir, "links", "x.crt"), Combined: filepath.Join(dir, "links", "x.pem")}
	if err := o.validate(dir, "x"); err != nil {
		t.Fatal(err)
	}
	return o
}

// The child side of TestInstallKilledAtEveryStep: install a pair and
// SIGKILL itself at the named step.
func TestInstallCrashChild(t *testing.T) {
	dir, at := os.Getenv("ACME_CRASH_DIR"), os.Getenv("ACME_CRASH_AT")
	if dir == "" {
		t.Skip("helper process for TestInstallKilledAtEveryStep")
	}
	p := Pair{KeyPEM: mustRead(t, filepath.Join(dir, "new.key")), CertPEM: mustRead(t, filepath.Join(dir, "new.crt"))}
	s := &store{out: testOutput(t, filepath.Join(dir, "out")), step: func(step string) {
		if step == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}}
	if _, err := s.install(p, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A process killed at any point of install leaves, behind every path a
// service reads, the old pair or the new pair, never a mix; and the next
// install succeeds and cleans up. test/acme's
// TestCrashAtEveryStepOwesExactlyTheHooks kills the acme-renew binary at
// these steps and the others of a renewal, and checks the deploy hooks
// the next run owes.
func TestInstallKilledAtEveryStep(t *testing.T) {
	steps := []string{"mkdir", "write " + FileKey, "write " + FileCombined, "write " + FileCert,
		"write " + FileChain, "write " + FileFullChain, "swap", "link " + FileKey, "link " + FileFullChain, "link " + FileCombined, "prune"}
	now := time.Now()
	oldPair := selfSigned(t, now, 90*24*time.Hour, "x.example.com")
	newPair := selfSigned(t, now, 90*24*time.Hour, "x.example.com")
	for _, step := range steps {
		t.Run(strings.ReplaceAll(step, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			s := &store{out: testOutput(t, filepath.Join(dir, "out"))}
			if _, err := s.install(oldPair, now); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "new.key"), newPair.KeyPEM, 0o600)
			os.WriteFile(filepath.Join(dir, "new.crt"), newPair.CertPEM, 0o600)
			cmd := exec.Command(os.Args[0], "-test.run=^TestInstallCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "ACME_CRASH_DIR="+dir, "ACME_CRASH_AT="+step)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed at %q: %v\n%s", step, err, out)
			}
			o := s.out
			key := mustRead(t, o.Key)
			crt := mustRead(t, o.FullChain)
			if _, err := tls.X509KeyPair(crt, key); err != nil {
				t.Fatalf("killed at %q: key and certificate do not match: %v", step, err)
			}
			comb := mustRead(t, o.Combined)
			if !bytes.Equal(comb, append(append([]byte{}, key...), crt...)) {
				t.Fatalf("killed at %q: combined file is not key+chain of the same version", step)
			}
			isNew := bytes.Equal(key, newPair.KeyPEM)
			if !isNew && !bytes.Equal(key, oldPair.KeyPEM) {
				t.Fatalf("killed at %q: key is neither old nor new", step)
			}
			if swapped := step != "mkdir" && !strings.HasPrefix(step, "write"); swapped != isNew {
				t.Fatalf("killed at %q: new pair visible = %v", step, isNew)
			}
			// The next run recovers: installs and prunes the leftovers.
			third := selfSigned(t, now, 90*24*time.Hour, "x.example.com")
			if _, err := s.install(third, now); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mustRead(t, o.Key), third.KeyPEM) {
				t.Fatal("install after a crash did not publish")
			}
			entries, _ := os.ReadDir(o.Dir)
			if len(entries) > 3 { // current, this version, the previous one
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Fatalf("leftovers not pruned: %v", names)
			}
		})
	}
}

func TestInstallModes(t *testing.T) {
	dir := t.TempDir()
	o := testOutput(t, dir)
	o.keyMode, o.certMode = 0o640, 0o644
	s := &store{out: o}
	if _, err := s.install(selfSigned(t, time.Now(), time.Hour, "m.example"), time.Now()); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{FileKey: 0o640, FileCombined: 0o640, FileCert: 0o644, FileFullChain: 0o644} {
		st, err := os.Stat(filepath.Join(o.CurrentDir(), file))
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", file, st.Mode().Perm(), err, want)
		}
	}
}
