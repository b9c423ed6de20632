package acme

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/go-acme/lego/v4/challenge/tlsalpn01"
)

// solverServers are the built-in HTTP-01 and TLS-ALPN-01 responders, shared
// by every certificate of a run: lego's own servers bind the port per
// certificate, which cannot work when several certificates on port 80 are
// obtained at once. A listener opens at the first Present on its address
// and closes after the last CleanUp.
type solverServers struct {
	logger *slog.Logger
	mu     sync.Mutex
	http   map[string]*httpResponder
	tls    map[string]*tlsResponder
}

func newSolverServers(logger *slog.Logger) *solverServers {
	return &solverServers{logger: logger, http: map[string]*httpResponder{}, tls: map[string]*tlsResponder{}}
}

type httpResponder struct {
	refs   int
	srv    *http.Server
	tokens map[string]string // token -> key authorization
}

type tlsResponder struct {
	refs  int
	ln    net.Listener
	certs map[string]*tls.Certificate // SNI -> challenge certificate
}

func listenAddr(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }

// HTTP01Provider returns a lego challenge.Provider answering on addr.
func (s *solverServers) httpProvider(addr string) *sharedHTTP01 {
	return &sharedHTTP01{s: s, addr: addr}
}

func (s *solverServers) tlsProvider(addr string) *sharedTLSALPN01 {
	return &sharedTLSALPN01{s: s, addr: addr}
}

type sharedHTTP01 struct {
	s    *solverServers
	addr string
}

// Present implements lego's challenge.Provider.
func (p *sharedHTTP01) Present(domain, token, keyAuth string) error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.http[p.addr]
	if r == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("http01: listen on %s: %w", p.addr, err)
		}
		r = &httpResponder{tokens: map[string]string{}}
		r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			token, ok := strings.CutPrefix(req.URL.Path, http01.ChallengePath(""))
			s.mu.Lock()
			ka, found := r.tokens[token]
			s.mu.Unlock()
			if !ok || !found || req.Method != http.MethodGet {
				http.NotFound(w, req)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(ka))
		}), ReadHeaderTimeout: 10 * time.Second}
		go r.srv.Serve(ln)
		s.http[p.addr] = r
		s.logger.Debug("http-01 responder listening", "addr", p.addr)
	}
	r.refs++
	r.tokens[token] = keyAuth
	return nil
}

// CleanUp implements lego's challenge.Provider.
func (p *sharedHTTP01) CleanUp(domain, token, keyAuth string) error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.http[p.addr]
	if r == nil {
		return nil
	}
	delete(r.tokens, token)
	if r.refs--; r.refs <= 0 {
		delete(s.http, p.addr)
		return r.srv.Close()
	}
	return nil
}

type sharedTLSALPN01 struct {
	s    *solverServers
	addr string
}

// Present implements lego's challenge.Provider.
func (p *sharedTLSALPN01) Present(domain, token, keyAuth string) error {
	cert, err := tlsalpn01.ChallengeCert(domain, keyAuth)
	if err != nil {
		return err
	}
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.tls[p.addr]
	if r == nil {
		r = &tlsResponder{certs: map[string]*tls.Certificate{}}
		cfg := &tls.Config{
			NextProtos: []string{tlsalpn01.ACMETLS1Protocol},
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				s.mu.Lock()
				defer s.mu.Unlock()
				if c := r.certs[strings.ToLower(hello.ServerName)]; c != nil {
					return c, nil
				}
				return nil, fmt.Errorf("tls-alpn-01: no challenge for %q", hello.ServerName)
			},
		}
		ln, err := tls.Listen("tcp", p.addr, cfg)
		if err != nil {
			return fmt.Errorf("tlsalpn01: listen on %s: %w", p.addr, err)
		}
		r.ln = ln
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					c.(*tls.Conn).Handshake()
					c.Close()
				}()
			}
		}()
		s.tls[p.addr] = r
	}
	r.refs++
	r.certs[domain] = cert
	return nil
}

// CleanUp implements lego's challenge.Provider.
func (p *sharedTLSALPN01) CleanUp(domain, token, keyAuth string) error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.tls[p.addr]
	if r == nil {
		return nil
	}
	delete(r.certs, domain)
	if r.refs--; r.refs <= 0 {
		delete(s.tls, p.addr)
		return r.ln.Close()
	}
	return nil
}
