package acme

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// accountUser is lego's registration.User for one configured account.
type accountUser struct {
	email string
	key   crypto.PrivateKey
	reg   *registration.Resource
}

func (u *accountUser) GetEmail() string                        { return u.email }
func (u *accountUser) GetRegistration() *registration.Resource { return u.reg }
func (u *accountUser) GetPrivateKey() crypto.PrivateKey        { return u.key }

// accountFile is what is remembered of a registration, beside its key.
type accountFile struct {
	Directory    string                 `json:"directory"`
	Email        string                 `json:"email"`
	Registration *registration.Resource `json:"registration"`
}

// account is a configured account, registered at most once per run, on
// first need, so a run with nothing due never talks to the CA.
type account struct {
	cfg    *Account
	dir    string
	client *http.Client

	once sync.Once
	mu   sync.Mutex // guards user after once
	user *accountUser
	err  error
}

// uri is the account's URL at the CA; "" before registration.
func (a *account) uri() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.user == nil || a.user.reg == nil {
		return ""
	}
	return a.user.reg.URI
}

// reregister registers the account again after the CA said it does not
// exist (accountDoesNotExist), unless another certificate of the run did
// so already (the URL is no longer stale).
func (a *account) reregister(userAgent, stale string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.user != nil && a.user.reg != nil && a.user.reg.URI != stale {
		return nil
	}
	u, err := a.register(userAgent, true)
	if err != nil {
		return err
	}
	a.user, a.err = u, nil
	return nil
}

func newAccount(cfg *Account, stateDir string, wrap func(http.RoundTripper) http.RoundTripper) (*account, error) {
	a := &account{cfg: cfg, dir: filepath.Join(stateDir, "accounts", cfg.name)}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if cfg.CABundle != "" {
		pemData, err := os.ReadFile(cfg.CABundle)
		if err != nil {
			return nil, fmt.Errorf("account %q: ca_bundle: %w", cfg.name, err)
		}
		if !roots.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("account %q: ca_bundle %s: no PEM certificate in it", cfg.name, cfg.CABundle)
		}
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	var rt http.RoundTripper = base
	if wrap != nil {
		rt = wrap(rt)
	}
	a.client = &http.Client{Transport: rt, Timeout: 2 * time.Minute}
	return a, nil
}

// legoConfig returns a lego config for this account, registering it first
// if needed.
func (a *account) legoConfig(userAgent string) (*lego.Config, error) {
	a.once.Do(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.user, a.err = a.register(userAgent, false)
	})
	a.mu.Lock()
	user, err := a.user, a.err
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	cfg := lego.NewConfig(user)
	cfg.CADirURL = a.cfg.Directory
	cfg.HTTPClient = a.httpClient()
	cfg.UserAgent = userAgent
	return cfg, nil
}

// httpClient returns a fresh http.Client over the account's transport:
// lego.NewClient wraps the Transport field of the client it is given in
// place, so a shared client would be wrapped once per certificate, racily.
func (a *account) httpClient() *http.Client {
	c := *a.client
	return &c
}

// register returns the account's user, registered at the CA: from
// account.json when it was registered at this directory, unless again is
// set; otherwise by registering (with EAB when configured) and recording
// the registration.
func (a *account) register(userAgent string, again bool) (*accountUser, error) {
	name := a.cfg.name
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return nil, fmt.Errorf("account %q: %w", name, err)
	}
	key, err := a.loadOrCreateKey()
	if err != nil {
		return nil, fmt.Errorf("account %q: %w", name, err)
	}
	u := &accountUser{email: a.cfg.Email, key: key}
	infoPath := filepath.Join(a.dir, "account.json")
	if data, err := os.ReadFile(infoPath); err == nil {
		var af accountFile
		if err := json.Unmarshal(data, &af); err != nil {
			return nil, fmt.Errorf("account %q: %s: %w", name, infoPath, err)
		}
		if !again && af.Directory == a.cfg.Directory && af.Registration != nil && af.Registration.URI != "" {
			u.reg = af.Registration
			return u, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("account %q: %w", name, err)
	}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = a.cfg.Directory
	cfg.HTTPClient = a.httpClient()
	cfg.UserAgent = userAgent
	client, err := lego.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("account %q: directory %s: %w", name, a.cfg.Directory, err)
	}
	var reg *registration.Resource
	if a.cfg.EAB != nil {
		hmac, err := a.cfg.EAB.hmacKey()
		if err != nil {
			return nil, fmt.Errorf("account %q: eab: %w", name, err)
		}
		reg, err = client.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
			TermsOfServiceAgreed: true, Kid: a.cfg.EAB.KID, HmacEncoded: hmac,
		})
		if err != nil {
			return nil, fmt.Errorf("account %q: register with EAB at %s: %w", name, a.cfg.Directory, err)
		}
	} else {
		reg, err = client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
		if err != nil {
			return nil, fmt.Errorf("account %q: register at %s: %w", name, a.cfg.Directory, err)
		}
	}
	u.reg = reg
	data, _ := json.MarshalIndent(accountFile{Directory: a.cfg.Directory, Email: a.cfg.Email, Registration: reg}, "", "  ")
	if err := atomicfile.WriteFile(infoPath, data, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return nil, fmt.Errorf("account %q: %w", name, err)
	}
	return u, nil
}

func (a *account) loadOrCreateKey() (crypto.PrivateKey, error) {
	path := filepath.Join(a.dir, "key.pem")
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := certcrypto.ParsePEMPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	kt, _ := parseKeyType(a.cfg.KeyType)
	k, err := certcrypto.GeneratePrivateKey(kt)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, certcrypto.PEMEncode(k), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return nil, err
	}
	return k, nil
}

func (e *EAB) hmacKey() (string, error) {
	switch {
	case e.HMACKey != "":
		return e.HMACKey, nil
	case e.HMACKeyFile != "":
		b, err := os.ReadFile(e.HMACKeyFile)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	default:
		v := os.Getenv(e.HMACKeyEnv)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty", e.HMACKeyEnv)
		}
		return v, nil
	}
}
