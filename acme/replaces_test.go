package acme

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	legoacme "github.com/go-acme/lego/v4/acme"
)

// An order naming an old certificate is retried without "replaces" exactly
// when the CA's answer is about that certificate, never on a rate limit.
func TestReplacesRefused(t *testing.T) {
	pd := func(typ string, status int, detail string) error {
		return fmt.Errorf("obtain: %w", &legoacme.ProblemDetails{Type: typ, HTTPStatus: status, Detail: detail})
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"malformed", pd(malformed, 400, "parsing ARI CertID failed"), true},
		{"already replaced", pd(legoacme.AlreadyReplacedErr, 409, "already replaced"), true},
		{"conflict", pd("urn:ietf:params:acme:error:orderNotReady", http.StatusConflict, ""), true},
		{"pebble cannot find", pd("urn:ietf:params:acme:error:serverInternal", 500,
			"could not find an order for the given certificate: could not find order resulting in the given certificate serial number"), true},
		{"rate limited naming replaces", pd(legoacme.RateLimitedErr, 429, "too many replaces"), false},
		{"other server error", pd("urn:ietf:params:acme:error:serverInternal", 500, "database unavailable"), false},
		{"not a problem", errors.New("connection refused"), false},
	} {
		if got := replacesRefused(c.err); got != c.want {
			t.Errorf("%s: replacesRefused = %v, want %v", c.name, got, c.want)
		}
	}
}
