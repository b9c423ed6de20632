package pki_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/pki/client"
)

// Issue 14: pki token --ttl -5m (or 0) made a one-hour token, --ttl 1d was
// refused, 'bad name!' became a DNS name of the certificate, and
// --role superuser was refused only at bootstrap, after the host spent
// the token. All are decided at mint time now.
func TestTokenValidatedAtMint(t *testing.T) {
	c := initBinCA(t, "")
	for _, tc := range []struct {
		args []string
		want string // "" = accepted
	}{
		{[]string{"web1", "--ttl", "-5m"}, "must be positive"},
		{[]string{"web1", "--ttl", "0"}, "must be positive"},
		{[]string{"web1", "--ttl", "soon"}, "invalid duration"},
		{[]string{"bad name!"}, "not a DNS name"},
		{[]string{"web1", "--san", "bad name!"}, "not a DNS name"},
		{[]string{"web1", "--san", "-web.example"}, "must not start or end with '-'"},
		{[]string{"web1", "--san", "under_score.example"}, "not a DNS name"},
		{[]string{"web1", "--role", "superuser"}, "the CA accepts only agent, reporter, admin"},
		{[]string{"web1", "--role", "a:b"}, "plain word"},
		{[]string{"web1", "--ttl", "1d", "--san", "web1.internal", "--san", "10.0.0.7", "--san", "*.web1.internal", "--role", "agent"}, ""},
		{[]string{"web1"}, ""},
	} {
		code, out := pkiRun(t, c.bin, append([]string{"token", "--config", c.cfg}, tc.args...)...)
		if tc.want != "" {
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("pki token %q: exit %d, want 1 and %q:\n%s", tc.args, code, tc.want, out)
			}
			continue
		}
		if code != 0 {
			t.Errorf("pki token %q: exit %d\n%s", tc.args, code, out)
			continue
		}
		info, err := client.ParseToken(out)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Hour
		if strings.Contains(strings.Join(tc.args, " "), "1d") {
			want = 24 * time.Hour
		}
		if got := info.Expiry.Sub(info.NotBefore); got != want {
			t.Errorf("pki token %q: token valid for %s, want %s", tc.args, got, want)
		}
	}
}
