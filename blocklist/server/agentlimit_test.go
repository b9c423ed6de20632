package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigAgentLimit: a policy broader than the agents' default limit
// (/8, /32) is refused with the file, line and value unless
// policy.agents_allow_broad says the agents accept it; within the limit it
// loads as before.
func TestConfigAgentLimit(t *testing.T) {
	const base = "listen: :8443\ntls: {cert: a, key: b, client_ca: c}\nstore: {path: x.db}\npolicy:\n"
	tests := []struct {
		policy string
		want   string // "" loads
		v4, v6 int
	}{
		{"  min_prefix_v4: 8\n  min_prefix_v6: 32\n", "", 8, 32},
		{"  min_prefix_v4: 24\n  min_prefix_v6: 64\n", "", 24, 64},
		{"  threshold: 3\n", "", 8, 32},
		{"  min_prefix_v4: 6\n", "cfg.yaml: line 5: policy.min_prefix_v4 6: broader than agents accept (/8)", 0, 0},
		{"  threshold: 3\n  min_prefix_v6: 24\n", "cfg.yaml: line 6: policy.min_prefix_v6 24: broader than agents accept (/32)", 0, 0},
		{"  min_prefix_v4: 7\n  agents_allow_broad: false\n", "use 8 or more, or set policy.agents_allow_broad: true", 0, 0},
		{"  min_prefix_v4: 6\n  min_prefix_v6: 24\n  agents_allow_broad: true\n", "", 6, 24},
		{"  min_prefix_v4: wide\n", `cfg.yaml:5:`, 0, 0},
		{"  min_prefix_v4: 33\n", "policy.min_prefix_v4 33: want 1 to 32", 0, 0},
	}
	for _, tc := range tests {
		path := filepath.Join(t.TempDir(), "cfg.yaml")
		if err := os.WriteFile(path, []byte(base+tc.policy), 0o600); err != nil {
			t.Fatal(err)
		}
		fc, err := LoadFile(path)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: err = %v, want it to contain %q", tc.policy, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.policy, err)
			continue
		}
		cfg := fc.ServerConfig()
		cfg.setDefaults()
		if got, want := fmt.Sprint(cfg.Policy.MinBits4, cfg.Policy.MinBits6), fmt.Sprint(tc.v4, tc.v6); got != want {
			t.Errorf("%q: min bits = %s, want %s", tc.policy, got, want)
		}
	}
}
