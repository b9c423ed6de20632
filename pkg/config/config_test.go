package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type sample struct {
	Listen string   `yaml:"listen"`
	TTL    Duration `yaml:"ttl"`
	Feeds  []struct {
		URL string `yaml:"url"`
		Max int    `yaml:"max"`
	} `yaml:"feeds"`
}

func (s *sample) Validate() error {
	if s.Listen == "" {
		return errors.New("listen: required")
	}
	return nil
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"ok", "listen: :8443\nttl: 7d12h\nfeeds:\n  - url: x\n    max: 3\n", ""},
		{"unknown key", "listen: :1\nfeeds:\n  - url: x\n    maxx: 3\n", `a.yaml:4: unknown key "maxx" (did you mean "max"?)`},
		{"unknown top key", "listen: :1\nttll: 1h\n", `a.yaml:2: unknown key "ttll" (did you mean "ttl"?)`},
		{"far from any key", "listen: :1\nnothing_like_it: 1\n", `a.yaml:2: unknown key "nothing_like_it" (valid keys here: feeds, listen, ttl)`},
		{"bad type", "listen: :1\nfeeds:\n  - max: many\n", `a.yaml:3: "many" where a whole number is expected`},
		{"list for string", "listen: [a, b]\n", "a.yaml:1: a list where a string is expected"},
		{"scalar for list", "listen: :1\nfeeds: x\n", `a.yaml:2: "x" where a list is expected`},
		{"bad duration", "listen: :1\nttl: forever\n", "a.yaml:2: invalid duration"},
		{"syntax", "listen: :1\n  - x: [\n", "a.yaml:"},
		{"validate", "ttl: 1h\n", "a.yaml: listen: required"},
		{"two docs", "listen: a\n---\nlisten: b\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			err := Decode("a.yaml", []byte(tt.in), &s)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if time.Duration(s.TTL) != 180*time.Hour || s.Feeds[0].Max != 3 {
					t.Fatalf("decoded %+v", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			// Errors speak YAML: no Go type names.
			for _, goWord := range []string{"config.sample", "struct", "[]struct", "!!", " int"} {
				if strings.Contains(err.Error(), goWord) {
					t.Errorf("err = %v names the Go type (%q)", err, goWord)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	var s sample
	err := Load(filepath.Join(t.TempDir(), "nope.yaml"), &s)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("listen: :8443\nttl: 7d\nfeeds:\n  - url: x\n"))
	f.Add([]byte("ttl: 1d1d\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		_ = Decode("fuzz.yaml", data, &s)
	})
}
