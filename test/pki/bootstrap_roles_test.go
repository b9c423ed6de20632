package pki_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/pki/client"
)

// A role the CA does not know cannot be checked by the host (the CA does
// not publish its roles), so the CA refuses it before step-ca records the
// token: once the role is added to roles: and the CA restarted, the very
// same token bootstraps. Tokens for unknown roles can only come from the
// Go API or another minter: pki token refuses them at mint time.
func TestUnknownRoleRefusedWithoutSpendingTheToken(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			c := newCA(t, st.dsn(t), "")
			tok, err := c.prov.Token(c.url, client.TokenRequest{Subject: "ops1.rampart.test", Roles: []string{"superuser"}, TTL: 10 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			_, err = client.Bootstrap(ctx, c.url, c.fp, tok, t.TempDir(), client.BootstrapOptions{})
			if err == nil || !strings.Contains(err.Error(), `role "superuser" is not one of`) {
				t.Fatalf("unknown role: %v", err)
			}
			c.cfg.Roles = append(c.cfg.Roles, "superuser")
			c.restart()
			b, err := client.Bootstrap(ctx, c.url, c.fp, tok, t.TempDir(), client.BootstrapOptions{})
			if err != nil {
				t.Fatalf("the same token once the role exists: %v", err)
			}
			if got := client.Roles(b.Leaf()); len(got) != 1 || got[0] != "superuser" {
				t.Fatalf("roles %v", got)
			}
		})
	}
}
