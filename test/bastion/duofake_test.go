package bastion_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// duoFake is an HTTPS fake of Duo's Auth API v2. It verifies every
// request's signature as Duo documents it (https://duo.com/docs/authapi#authentication):
// HTTP Basic auth with the integration key as user name and, as password,
// the hex HMAC (SHA-1, or SHA-512 which current clients send) keyed by the
// secret key over these lines joined by "\n":
//
//	the Date header (RFC 2822)
//	the method, upper case
//	the API host, lower case
//	the path
//	the parameters, sorted by name, each name=value with bytes other than
//	A-Z a-z 0-9 - _ . ~ percent-encoded (upper-case hex), joined by "&"
//
// A request with a bad signature, a missing or stale date or the wrong
// integration key gets 401 like the real service. Users named *allow*
// approve pushes, *deny* deny them, *timeout* never answer; passcode
// "7654321" is right for everyone.
type duoFake struct {
	t        testing.TB
	IKey     string
	SKey     string
	Srv      *httptest.Server
	CAFile   string
	mu       sync.Mutex
	txs      map[string]string // txid -> user
	polls    map[string]int
	Requests []string // method path user, for assertions
	BadSigs  int
}

func newDuoFake(t testing.TB) *duoFake {
	f := &duoFake{t: t, IKey: "DIXXXXXXXXXXXXXXXXXX", SKey: "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
		txs: map[string]string{}, polls: map[string]int{}}
	f.Srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Srv.Close)
	f.CAFile = filepath.Join(t.TempDir(), "duo-ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Srv.Certificate().Raw})
	if err := os.WriteFile(f.CAFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// Host is what the bastion's api_host must be.
func (f *duoFake) Host() string { return strings.TrimPrefix(f.Srv.URL, "https://") }

// duoCanonParams encodes params as Duo's canonical form.
func duoCanonParams(params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vals := append([]string(nil), params[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			parts = append(parts, duoEscape(k)+"="+duoEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

func duoEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (f *duoFake) fail(w http.ResponseWriter, code int, duoCode int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"stat": "FAIL", "code": duoCode, "message": msg})
}

func (f *duoFake) ok(w http.ResponseWriter, resp any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"stat": "OK", "response": resp})
}

// verify checks the request's signature; it returns the parameters.
func (f *duoFake) verify(r *http.Request) (url.Values, error) {
	date := r.Header.Get("Date")
	when, err := time.Parse(time.RFC1123Z, date)
	if err != nil {
		return nil, fmt.Errorf("bad Date header %q", date)
	}
	if d := time.Since(when); d > 5*time.Minute || d < -5*time.Minute {
		return nil, fmt.Errorf("stale Date %q", date)
	}
	var params url.Values
	if r.Method == http.MethodGet {
		params = r.URL.Query()
	} else {
		body, _ := io.ReadAll(r.Body)
		if params, err = url.ParseQuery(string(body)); err != nil {
			return nil, fmt.Errorf("body: %v", err)
		}
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != f.IKey {
		return nil, fmt.Errorf("wrong integration key %q", user)
	}
	canon := strings.Join([]string{date, strings.ToUpper(r.Method), strings.ToLower(r.Host), r.URL.Path, duoCanonParams(params)}, "\n")
	var h func() hash.Hash
	switch len(pass) {
	case 40:
		h = sha1.New
	case 128:
		h = sha512.New
	default:
		return nil, fmt.Errorf("signature of length %d", len(pass))
	}
	mac := hmac.New(h, []byte(f.SKey))
	mac.Write([]byte(canon))
	want := hex.EncodeToString(mac.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(want), []byte(pass)) != 1 {
		return nil, fmt.Errorf("signature mismatch")
	}
	return params, nil
}

func (f *duoFake) serve(w http.ResponseWriter, r *http.Request) {
	params, err := f.verify(r)
	if err != nil {
		f.mu.Lock()
		f.BadSigs++
		f.mu.Unlock()
		f.t.Logf("duo fake: %s %s refused: %v", r.Method, r.URL.Path, err)
		f.fail(w, http.StatusUnauthorized, 40103, "Invalid signature in request credentials")
		return
	}
	user := params.Get("username")
	f.mu.Lock()
	f.Requests = append(f.Requests, r.Method+" "+r.URL.Path+" "+user+" "+params.Get("factor"))
	f.mu.Unlock()
	switch r.URL.Path {
	case "/auth/v2/preauth":
		f.ok(w, map[string]any{"result": "auth", "status_msg": "Account is active",
			"devices": []map[string]any{{"device": "DPFZRS9FB0D46QFTM899", "type": "phone", "name": "test phone", "number": "XXX-XXX-0100",
				"capabilities": []string{"auto", "push", "sms", "phone", "mobile_otp"}}}})
	case "/auth/v2/auth":
		switch params.Get("factor") {
		case "passcode":
			if params.Get("passcode") == "7654321" {
				f.ok(w, map[string]any{"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."})
			} else {
				f.ok(w, map[string]any{"result": "deny", "status": "deny", "status_msg": "Incorrect passcode. Please try again."})
			}
		case "push", "phone":
			if params.Get("async") != "1" {
				f.fail(w, http.StatusBadRequest, 40002, "expected async")
				return
			}
			txid := fmt.Sprintf("tx-%d", time.Now().UnixNano())
			f.mu.Lock()
			f.txs[txid] = user
			f.mu.Unlock()
			f.ok(w, map[string]any{"txid": txid})
		default:
			f.fail(w, http.StatusBadRequest, 40002, "Invalid request parameters: factor")
		}
	case "/auth/v2/auth_status":
		txid := params.Get("txid")
		f.mu.Lock()
		u, ok := f.txs[txid]
		f.polls[txid]++
		n := f.polls[txid]
		f.mu.Unlock()
		if !ok {
			f.fail(w, http.StatusBadRequest, 40002, "Invalid request parameters: txid")
			return
		}
		switch {
		case n < 2 || strings.Contains(u, "timeout"):
			f.ok(w, map[string]any{"result": "waiting", "status": "pushed", "status_msg": "Pushed a login request to your device..."})
		case strings.Contains(u, "allow"):
			f.ok(w, map[string]any{"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."})
		default:
			f.ok(w, map[string]any{"result": "deny", "status": "deny", "status_msg": "Login request denied."})
		}
	default:
		f.fail(w, http.StatusNotFound, 40400, "Resource not found")
	}
}
