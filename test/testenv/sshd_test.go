package testenv_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"net"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/test/testenv"
)

func TestStartSSHD(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := gossh.NewSignerFromKey(priv)
	_, capriv, _ := ed25519.GenerateKey(rand.Reader)
	hostCA, _ := gossh.NewSignerFromKey(capriv)
	s := testenv.StartSSHD(t, testenv.SSHDOptions{AuthorizedKeys: []gossh.PublicKey{user.PublicKey()}, HostCA: hostCA})

	checker := &gossh.CertChecker{IsHostAuthority: func(k gossh.PublicKey, _ string) bool {
		return string(k.Marshal()) == string(hostCA.PublicKey().Marshal())
	}}
	cfg := &gossh.ClientConfig{User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(user)},
		HostKeyCallback: checker.CheckHostKey, Timeout: 10 * time.Second}
	c, err := gossh.Dial("tcp", s.Addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("echo hello")
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("exec: %q, %v", out, err)
	}

	// The unprivileged account logs in with the same key.
	cfg.User = testenv.SSHUser(t)
	c3, err := gossh.Dial("tcp", s.Addr, cfg)
	if err != nil {
		t.Fatalf("dial as %s: %v", cfg.User, err)
	}
	sess3, _ := c3.NewSession()
	if out, err := sess3.Output("id -un"); err != nil || string(out) != cfg.User+"\n" {
		t.Fatalf("id -un as %s: %q, %v", cfg.User, out, err)
	}
	c3.Close()

	// The plain host key is what a pinning client sees without the CA.
	pinned := &gossh.ClientConfig{User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(user)},
		HostKeyAlgorithms: []string{gossh.KeyAlgoED25519},
		HostKeyCallback:   gossh.FixedHostKey(s.HostKey), Timeout: 10 * time.Second}
	c2, err := gossh.Dial("tcp", s.Addr, pinned)
	if err != nil {
		t.Fatalf("pinned dial: %v", err)
	}
	c2.Close()
	if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		t.Fatal(err)
	}
}

func TestStartSSHDInNamespace(t *testing.T) {
	h := testenv.NewHost(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := gossh.NewSignerFromKey(priv)
	s := testenv.StartSSHD(t, testenv.SSHDOptions{AuthorizedKeys: []gossh.PublicKey{user.PublicKey()}, Host: h})
	err := h.Do(func() error {
		c, err := gossh.Dial("tcp", s.Addr, &gossh.ClientConfig{User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(user)},
			HostKeyCallback: gossh.FixedHostKey(s.HostKey), HostKeyAlgorithms: []string{gossh.KeyAlgoED25519}, Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		t.Fatalf("ssh into the namespace's sshd: %v", err)
	}
}

func TestStartSSHDGivenHostKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	block, err := gossh.MarshalPrivateKey(ec, "")
	if err != nil {
		t.Fatal(err)
	}
	hostPub, _ := gossh.NewPublicKey(&ec.PublicKey)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := gossh.NewSignerFromKey(priv)
	s := testenv.StartSSHD(t, testenv.SSHDOptions{HostKeyPEM: pem.EncodeToMemory(block), AuthorizedKeys: []gossh.PublicKey{user.PublicKey()}})
	if string(s.HostKey.Marshal()) != string(hostPub.Marshal()) {
		t.Fatal("SSHD.HostKey is not the given key")
	}
	c, err := gossh.Dial("tcp", s.Addr, &gossh.ClientConfig{User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(user)},
		HostKeyCallback: gossh.FixedHostKey(hostPub), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("dial with the given host key pinned: %v", err)
	}
	c.Close()
}
