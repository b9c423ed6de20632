// Package config loads Rampart's YAML configuration files strictly: an
// unknown key, a value of the wrong type or a syntax error is an error that
// names the file and the line, so a typo never silently turns a setting off.
// Errors speak YAML, not Go: an unknown key comes with the closest valid
// key at that place ("did you mean"), a wrong value with what was expected.
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
	"reflect"
	"regexp"
	"sort"
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
		return fmt.Errorf("config: %s", located(name, err, reflect.TypeOf(v)))
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

// located rewrites yaml.v3's "line N: msg" into "file:N: msg", one per
// line, with msg in the user's words (see [describe]); t is the type
// decoded into.
func located(name string, err error, t reflect.Type) string {
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
			out = append(out, fmt.Sprintf("%s:%s: %s", name, sub[1], describe(sub[2], t)))
		} else {
			out = append(out, fmt.Sprintf("%s: %s", name, describe(m, t)))
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

var (
	unknownRE   = regexp.MustCompile(`^field (\S+) not found in type (.+)$`)
	unmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
)

// describe turns yaml.v3's messages about Go types into the config's
// terms: the valid keys where an unknown one was found, the kind of value
// that was expected.
func describe(msg string, t reflect.Type) string {
	if m := unknownRE.FindStringSubmatch(msg); m != nil {
		keys := keysOf(t, m[2])
		if len(keys) == 0 {
			return fmt.Sprintf("unknown key %q", m[1])
		}
		if best := closest(m[1], keys); best != "" {
			return fmt.Sprintf("unknown key %q (did you mean %q?)", m[1], best)
		}
		return fmt.Sprintf("unknown key %q (valid keys here: %s)", m[1], strings.Join(keys, ", "))
	}
	if m := unmarshalRE.FindStringSubmatch(msg); m != nil {
		var got string
		switch m[1] {
		case "seq":
			got = "a list"
		case "map":
			got = "a mapping"
		default:
			got = fmt.Sprintf("%q", m[2])
		}
		return fmt.Sprintf("%s where %s is expected", got, expected(m[3]))
	}
	return msg
}

// expected names what a Go type holds, in YAML terms.
func expected(goType string) string {
	switch {
	case goType == "time.Duration" || strings.HasSuffix(goType, "config.Duration"):
		return "a duration (90s, 10m, 24h, 7d)"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map[") || strings.HasPrefix(goType, "struct") || strings.Contains(goType, "."):
		return "a mapping (key: value)"
	}
	return "another kind of value"
}

// keysOf returns the YAML keys of the struct type named name (as
// reflect prints it: "bastion.Config") reachable from t.
func keysOf(t reflect.Type, name string) []string {
	seen := map[reflect.Type]bool{}
	var find func(reflect.Type) reflect.Type
	find = func(t reflect.Type) reflect.Type {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct || seen[t] {
			return nil
		}
		seen[t] = true
		if t.String() == name {
			return t
		}
		for i := 0; i < t.NumField(); i++ {
			if f := find(t.Field(i).Type); f != nil {
				return f
			}
		}
		return nil
	}
	st := find(t)
	if st == nil {
		return nil
	}
	var keys []string
	var collect func(reflect.Type)
	collect = func(st reflect.Type) {
		for i := 0; i < st.NumField(); i++ {
			f := st.Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			if strings.Contains(","+opts+",", ",inline,") {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					collect(ft)
				}
				continue
			}
			if tag == "" {
				tag = strings.ToLower(f.Name)
			}
			keys = append(keys, tag)
		}
	}
	collect(st)
	sort.Strings(keys)
	return keys
}

// closest returns the key nearest to typo by edit distance, if it is near
// enough to be the one meant.
func closest(typo string, keys []string) string {
	best, bestD := "", len(typo)/3+2
	for _, k := range keys {
		if d := editDistance(strings.ToLower(typo), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
