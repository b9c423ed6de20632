package recorded

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/internal/quickack"
)

// maxPromptRounds bounds keyboard-interactive rounds relayed from a target.
const maxPromptRounds = 5

// SignUserCert returns a signer holding a fresh ed25519 key and a user
// certificate for it, signed by ca: principal, valid from one minute ago (clock
// skew) for ttl, KeyId "rampart-bastion session=ID user=USER", no forwarding
// rights and permit-pty only when pty is true.
func SignUserCert(ca gossh.Signer, principal, user, sessionID string, ttl time.Duration, pty bool, now time.Time) (gossh.Signer, *gossh.Certificate, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("recorded: generate session key: %w", err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("recorded: session key: %w", err)
	}
	var serial [8]byte
	rand.Read(serial[:])
	cert := &gossh.Certificate{
		Key:             signer.PublicKey(),
		Serial:          binary.BigEndian.Uint64(serial[:]),
		CertType:        gossh.UserCert,
		KeyId:           fmt.Sprintf("rampart-bastion session=%s user=%s", sessionID, user),
		ValidPrincipals: []string{principal},
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(ttl).Unix()),
		Permissions:     gossh.Permissions{Extensions: map[string]string{}},
	}
	if pty {
		cert.Permissions.Extensions["permit-pty"] = ""
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return nil, nil, fmt.Errorf("recorded: sign certificate for %s: %w", principal, err)
	}
	cs, err := gossh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("recorded: certificate signer: %w", err)
	}
	return cs, cert, nil
}

// HostKeyCallback accepts the target's host key if it is one of t.HostKeys,
// or a host certificate signed by t.HostCA, currently valid, whose
// principals include the host part of t.Addr or t.Name.
func HostKeyCallback(t Target, now func() time.Time) gossh.HostKeyCallback {
	if now == nil {
		now = time.Now
	}
	return func(_ string, _ net.Addr, key gossh.PublicKey) error {
		for _, k := range t.HostKeys {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		cert, ok := key.(*gossh.Certificate)
		if !ok {
			return fmt.Errorf("%w: %s key %s is not pinned and not a host certificate", ErrHostKey, key.Type(), gossh.FingerprintSHA256(key))
		}
		if t.HostCA == nil {
			for _, k := range t.HostKeys {
				if bytes.Equal(k.Marshal(), cert.Key.Marshal()) {
					return nil
				}
			}
			return fmt.Errorf("%w: host certificate %q presented, but no host CA configured and its key is not pinned", ErrHostKey, cert.KeyId)
		}
		host, _, err := net.SplitHostPort(t.Addr)
		if err != nil {
			host = t.Addr
		}
		checker := &gossh.CertChecker{
			IsHostAuthority: func(auth gossh.PublicKey, _ string) bool {
				return bytes.Equal(auth.Marshal(), t.HostCA.Marshal())
			},
			Clock: now,
		}
		if cert.CertType != gossh.HostCert {
			return fmt.Errorf("%w: certificate %q is not a host certificate", ErrHostKey, cert.KeyId)
		}
		if !checker.IsHostAuthority(cert.SignatureKey, "") {
			return fmt.Errorf("%w: host certificate %q signed by %s, not the target's host CA", ErrHostKey, cert.KeyId, gossh.FingerprintSHA256(cert.SignatureKey))
		}
		var lastErr error
		for _, name := range []string{host, t.Name} {
			if name == "" {
				continue
			}
			if lastErr = checker.CheckCert(name, cert); lastErr == nil {
				return nil
			}
		}
		return fmt.Errorf("%w: host certificate %q: %w", ErrHostKey, cert.KeyId, lastErr)
	}
}

// dial logs in to the target with a fresh certificate, relaying the
// target's keyboard-interactive prompts to the user.
func (s *session) dial(ctx context.Context) (*gossh.Client, error) {
	p := s.p
	signer, _, err := SignUserCert(p.opts.UserCA, s.remoteUser, s.user, s.id, p.opts.CertTTL, s.hasPty, p.now())
	if err != nil {
		return nil, err
	}
	var hostKeyErr error
	check := HostKeyCallback(s.target, p.now)
	cfg := &gossh.ClientConfig{
		User: s.remoteUser,
		Auth: []gossh.AuthMethod{
			gossh.PublicKeys(signer),
			gossh.KeyboardInteractive(s.relayPrompts()),
		},
		HostKeyCallback: func(host string, remote net.Addr, key gossh.PublicKey) error {
			if err := check(host, remote, key); err != nil {
				hostKeyErr = err
				p.audit(EventHostKeyRejected, s.fields("key", gossh.FingerprintSHA256(key), "key_type", key.Type(), "reason", err.Error()))
				return err
			}
			return nil
		},
		Timeout:       p.opts.DialTimeout,
		ClientVersion: "SSH-2.0-rampart-bastion",
	}
	if len(p.opts.Ciphers) > 0 {
		cfg.Ciphers = p.opts.Ciphers
	}
	dctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", s.target.Addr)
	if err != nil {
		return nil, fmt.Errorf("recorded: dial target %s (%s): %w", s.target.Name, s.target.Addr, err)
	}
	// The handshake may wait on the user answering prompts; the session
	// context still bounds it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// Prompt ACKs: sshd writes small packets back to back during the
	// handshake, and delayed ACKs made each pair a 40 ms stall (a recorded
	// session's start: 226 -> 185 ms, median of 12 interleaved pairs).
	c, chans, reqs, err := gossh.NewClientConn(quickack.Conn(conn, 128<<10), s.target.Addr, cfg)
	if err != nil {
		conn.Close()
		if hostKeyErr != nil {
			return nil, fmt.Errorf("recorded: target %s (%s): %w", s.target.Name, s.target.Addr, hostKeyErr)
		}
		return nil, fmt.Errorf("recorded: log in to target %s (%s) as %s: %w", s.target.Name, s.target.Addr, s.remoteUser, err)
	}
	return gossh.NewClient(c, chans, reqs), nil
}

// relayPrompts shows the target's keyboard-interactive prompts on the
// user's terminal and sends back what the user types. Answers are neither
// recorded nor logged; the prompt texts are audited.
func (s *session) relayPrompts() gossh.KeyboardInteractiveChallenge {
	rounds := 0
	return func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		rounds++
		if rounds > maxPromptRounds {
			return nil, fmt.Errorf("target asked more than %d rounds of keyboard-interactive questions", maxPromptRounds)
		}
		if len(questions) == 0 && name == "" && instruction == "" {
			return nil, nil
		}
		s.p.audit(EventTargetPrompt, s.fields("name", name, "instruction", instruction, "prompts", questions))
		if !s.hasPty {
			return nil, errors.New("target asks keyboard-interactive questions, but the session has no terminal to ask them on")
		}
		for _, t := range []string{name, instruction} {
			if t = strings.TrimSpace(t); t != "" {
				fmt.Fprintf(s.raw, "%s\r\n", crlf(t))
			}
		}
		answers := make([]string, len(questions))
		for i, q := range questions {
			fmt.Fprint(s.raw, crlf(q))
			a, err := s.readAnswer(i < len(echos) && echos[i])
			if err != nil {
				return nil, err
			}
			answers[i] = a
		}
		return answers, nil
	}
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// readAnswer reads one line typed on the user's (raw mode) terminal,
// echoing it if asked, with backspace; Ctrl-C or Ctrl-D aborts.
func (s *session) readAnswer(echo bool) (string, error) {
	const maxAnswer = 1024
	var line []byte
	buf := make([]byte, 256)
	for {
		n, err := s.in.Read(buf)
		for i := 0; i < n; i++ {
			c := buf[i]
			switch c {
			case '\r', '\n':
				// Bytes typed ahead go to the session.
				rest := buf[i+1 : n]
				if len(rest) > 0 && c == '\r' && rest[0] == '\n' {
					rest = rest[1:]
				}
				s.in.head = append(s.in.head, rest...)
				s.raw.Write([]byte("\r\n"))
				return string(line), nil
			case 3, 4:
				s.raw.Write([]byte("\r\n"))
				return "", errors.New("user aborted the target's prompt")
			case 0x7f, 8:
				if len(line) > 0 {
					line = line[:len(line)-1]
					if echo {
						s.raw.Write([]byte("\b \b"))
					}
				}
			default:
				if len(line) >= maxAnswer {
					return "", errors.New("answer to the target's prompt too long")
				}
				line = append(line, c)
				if echo {
					s.raw.Write([]byte{c})
				}
			}
		}
		if err != nil {
			return "", fmt.Errorf("reading answer to the target's prompt: %w", err)
		}
	}
}
