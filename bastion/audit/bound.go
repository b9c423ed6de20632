package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// MaxLine is the longest line [Log.Append] writes, "prev" and "hash"
// included. Much of a record comes from the client (user names, target
// spellings, channel and subsystem names) and an SSH packet holds up to
// 256 KiB, so the writer bounds every string itself, whatever its
// callers did: one refused attempt cannot write more than MaxLine bytes.
const MaxLine = 4096

// Field limits, in bytes before JSON escaping; halved until the line fits.
var fieldLimits = limits{str: 256, reason: 1024, value: 512, keys: 32}

type limits struct {
	str    int // user, source, method, result, target, session, type
	reason int
	value  int // each member of Fields, as JSON
	keys   int // members of Fields
}

// Truncate returns s cut to at most n bytes, at a UTF-8 boundary, with a
// marker saying how many bytes were cut (so a cut value never passes for
// a whole one).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…[%d bytes cut]", len(s)-cut)
}

// sealBounded seals rec with its strings cut until the line fits MaxLine.
func sealBounded(rec Record) (line []byte, hash string, err error) {
	l := fieldLimits
	for range 8 {
		line, hash, err = Seal(bound(rec, l))
		if err != nil || len(line) <= MaxLine {
			return line, hash, err
		}
		l = limits{str: l.str / 2, reason: l.reason / 2, value: l.value / 2, keys: l.keys / 2}
	}
	// Control bytes escape to six bytes each; this cannot exceed MaxLine.
	l = limits{str: 16, reason: 64, value: 0, keys: 0}
	b := bound(rec, l)
	if len(rec.Fields) > 0 {
		b.Fields = map[string]any{"fields_cut": len(rec.Fields)}
	}
	return Seal(b)
}

func bound(rec Record, l limits) Record {
	for _, p := range []*string{&rec.Type, &rec.User, &rec.Source, &rec.Method, &rec.Result, &rec.Target, &rec.Session} {
		*p = Truncate(*p, l.str)
	}
	rec.Reason = Truncate(rec.Reason, l.reason)
	if len(rec.Fields) == 0 {
		return rec
	}
	keys := make([]string, 0, len(rec.Fields))
	for k := range rec.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	f := make(map[string]any, min(len(keys), l.keys)+1)
	for i, k := range keys {
		if i >= l.keys {
			f["fields_cut"] = len(keys) - l.keys
			break
		}
		bk := Truncate(k, 64)
		switch v := rec.Fields[k].(type) {
		case string:
			f[bk] = Truncate(v, l.value)
		case nil, bool, int, int64, uint64, float64, uint16, uint32, int32:
			f[bk] = v
		default:
			b, err := json.Marshal(v)
			if err != nil || len(b) > l.value {
				f[bk] = Truncate(string(b), l.value)
				continue
			}
			f[bk] = json.RawMessage(b)
		}
	}
	rec.Fields = f
	return rec
}
