// Package config loads Rampart's YAML configuration files strictly: an
// unknown key, a value of the wrong type or a syntax error is an error that
// names the file and the line, so a typo never silently turns a setting off.
//
// Each daemon defines its own struct with yaml tags; [Load] decodes one file
// into it, then calls its Validate method if it has one.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Validator is implemented by configs that check themselves after decoding
// (required fields, ranges). Its error is reported with the file name.
type Validator interface {
	Validate() error
}

// Load decodes the YAML file at path into v, rejecting unknown keys.
func Load(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(path, data, v)
}

// Decode is Load for content already in memory; name is used in errors.
func Decode(name string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s", located(name, err))
	}
	// A second document is almost always a pasting accident.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: more than one YAML document", name)
	}
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("config: %s: %w", name, err)
		}
	}
	return nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// located rewrites yaml.v3's "line N: msg" into "file:N: msg", one per line.
func located(name string, err error) string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			out = append(out, fmt.Sprintf("%s:%s: %s", name, sub[1], sub[2]))
		} else {
			out = append(out, fmt.Sprintf("%s: %s", name, m))
		}
	}
	return strings.Join(out, "\n")
}

// Duration is a time.Duration that also accepts days ("7d", "1d12h") in
// YAML, since certificate lifetimes and ban lengths are spoken in days.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// String returns the duration in Go's notation.
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration is time.ParseDuration plus a leading whole number of days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (examples: 90s, 10m, 24h, 7d)", s)
	}
	return days + v, nil
}
