package pki_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-sec/rampart/pki/client"
)

// TestListInventory issues a seeded random set of certificates (names,
// roles, lifetimes), revokes some, then checks `pki list` (the real
// binary against the running CA) against the test's own record of what
// it issued, for every filter, on both stores; and the
// rampart_pki_certificates gauge against the same record.
func TestListInventory(t *testing.T) {
	bin := pkiBinary(t)
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			c := newCA(t, st.dsn(t), "")
			ctx := context.Background()
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := mrand.New(mrand.NewPCG(seed, 17))
			roles := []string{"agent", "reporter", "admin"}
			want := map[string]client.Issued{}
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			cl := c.client()
			for i := range 12 {
				name := fmt.Sprintf("h%d-%s.rampart.test", i, []string{"web", "db", "edge"}[rng.IntN(3)])
				sans := []string{name}
				if rng.IntN(2) == 0 {
					sans = append(sans, fmt.Sprintf("127.0.0.%d", 1+rng.IntN(200)))
				}
				var rs []string
				for _, r := range roles {
					if rng.IntN(3) == 0 {
						rs = append(rs, r)
					}
				}
				life := time.Duration(10+rng.IntN(48*60)) * time.Minute
				tok, err := c.prov.Token(c.url, client.TokenRequest{Subject: name, SANs: sans, Roles: rs, TTL: 10 * time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				csr, _ := client.NewCSR(key, name, sans)
				chain, err := cl.Sign(ctx, csr, tok, life)
				if err != nil {
					t.Fatal(err)
				}
				is := client.NewIssued(chain[0])
				if !slices.Equal(is.Roles, rs) {
					t.Fatalf("certificate roles %v, requested %v", is.Roles, rs)
				}
				is.Provisioner = c.cfg.Provisioner.Name
				if rng.IntN(4) == 0 {
					rt, _ := c.prov.RevokeToken(c.url, is.Serial)
					if err := cl.Revoke(ctx, is.Serial, rt, "test"); err != nil {
						t.Fatal(err)
					}
					is.Revoked = true
				}
				want[is.Serial] = is
			}

			list := func(args ...string) []client.Issued {
				t.Helper()
				cmd := exec.Command(bin, append([]string{"list", "--config", filepath.Join(c.dir, "pki.yaml"), "--json"}, args...)...)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("pki list %v: %v\n%s", args, err, out)
				}
				var got []client.Issued
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatalf("pki list %v: %v\n%s", args, err, out)
				}
				return got
			}
			check := func(args []string, sel func(client.Issued) bool) {
				t.Helper()
				got := list(args...)
				var gotSerials, wantSerials []string
				for _, g := range got {
					gotSerials = append(gotSerials, g.Serial)
					w, ok := want[g.Serial]
					if !ok {
						t.Errorf("pki list %v: serial %s was never issued by the test", args, g.Serial)
						continue
					}
					if g.Subject != w.Subject || !slices.Equal(g.Names, w.Names) || !slices.Equal(g.Roles, w.Roles) ||
						!g.NotAfter.Equal(w.NotAfter) || g.Revoked != w.Revoked || g.Provisioner != w.Provisioner {
						t.Errorf("pki list %v: serial %s:\n got %+v\nwant %+v", args, g.Serial, g, w)
					}
				}
				for s, w := range want {
					if sel(w) {
						wantSerials = append(wantSerials, s)
					}
				}
				slices.Sort(gotSerials)
				slices.Sort(wantSerials)
				if !slices.Equal(gotSerials, wantSerials) {
					t.Errorf("pki list %v: serials\n got %v\nwant %v", args, gotSerials, wantSerials)
				}
			}
			check(nil, func(client.Issued) bool { return true })
			check([]string{"--revoked"}, func(w client.Issued) bool { return w.Revoked })
			check([]string{"--name", "*-web.rampart.test"}, func(w client.Issued) bool {
				return strings.HasSuffix(w.Subject, "-web.rampart.test")
			})
			check([]string{"--name", "127.0.0.1??"}, func(w client.Issued) bool {
				return slices.ContainsFunc(w.Names, func(n string) bool { ok, _ := path.Match("127.0.0.1??", n); return ok })
			})
			// Within a margin of the boundary the test's clock and the
			// binary's differ: leave the boundary out of the sample.
			now := time.Now()
			horizon := 20 * time.Hour
			for _, w := range want {
				if d := w.NotAfter.Sub(now.Add(horizon)); d > -time.Minute && d < time.Minute {
					horizon += 3 * time.Minute
				}
			}
			check([]string{"--expiring", horizon.String()}, func(w client.Issued) bool {
				return !w.Revoked && w.NotAfter.Before(now.Add(horizon))
			})

			// The table form names the same serials.
			out, err := exec.Command(bin, "list", "--config", filepath.Join(c.dir, "pki.yaml")).CombinedOutput()
			if err != nil {
				t.Fatalf("pki list: %v\n%s", err, out)
			}
			for s, w := range want {
				line := ""
				for _, l := range strings.Split(string(out), "\n") {
					if strings.HasPrefix(l, s+" ") {
						line = l
					}
				}
				state := "valid"
				if w.Revoked {
					state = "revoked"
				}
				if line == "" || !strings.HasSuffix(strings.TrimSpace(line), state) || !strings.Contains(line, w.Subject) {
					t.Errorf("pki list table: serial %s (%s, %s): line %q", s, w.Subject, state, line)
				}
			}

			// The gauge counts what the store holds.
			var valid, revoked int
			for _, w := range want {
				if w.Revoked {
					revoked++
				} else {
					valid++
				}
			}
			g := `# HELP rampart_pki_certificates X.509 certificates recorded in the CA's store, by state (valid, revoked: revoked and not expired, expired).
# TYPE rampart_pki_certificates gauge
`
			g += fmt.Sprintf("rampart_pki_certificates{state=\"expired\"} 0\nrampart_pki_certificates{state=\"revoked\"} %d\nrampart_pki_certificates{state=\"valid\"} %d\n", revoked, valid)
			if err := testutil.GatherAndCompare(c.reg, strings.NewReader(g), "rampart_pki_certificates"); err != nil {
				t.Error(err)
			}

			// A token is needed, it is used once, and only the
			// provisioner's key can sign it.
			tok, _ := c.prov.InventoryToken(c.url)
			if _, err := cl.Inventory(ctx, tok); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Inventory(ctx, tok); err == nil || !strings.Contains(err.Error(), "already used") {
				t.Errorf("replayed inventory token: %v", err)
			}
			other := newCA(t, "", "")
			tok, _ = other.prov.InventoryToken(c.url)
			if _, err := cl.Inventory(ctx, tok); err == nil || !strings.Contains(err.Error(), "401") {
				t.Errorf("inventory token from another CA: %v", err)
			}
			if _, err := cl.Inventory(ctx, "x.y.z"); err == nil {
				t.Error("malformed inventory token accepted")
			}
		})
	}
}
