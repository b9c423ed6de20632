package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/adminapi"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/pkg/config"
	"github.com/rampart-sec/rampart/pkg/listfile"
)

// MaxImportBytes bounds one import body (about 2 million lines).
const MaxImportBytes = 64 << 20

// ImportOptions say how to read and apply a bulk import.
type ImportOptions struct {
	// Name identifies the input in rejected lines ("-" for stdin).
	Name string
	// Format is "list" (one address or prefix a line, # and ; comments),
	// "csv" (prefix,ttl,reason; a header line "prefix,..." is skipped) or
	// "" to tell from the first entry (a comma means CSV).
	Format string
	// TTL applies to entries without their own; 0 means the policy's
	// manual TTL.
	TTL time.Duration
	// Reason applies to entries without their own.
	Reason string
	// SkipInvalid imports the valid entries when some are refused;
	// otherwise one refused entry refuses the whole import.
	SkipInvalid bool
	// Force bans entries covering fleet hosts too.
	Force bool
}

// ImportEntry is one parsed line of an import.
type ImportEntry struct {
	Line   int
	Prefix netip.Prefix
	TTL    time.Duration // 0: the import's default
	Reason string
}

// ParseImport reads a list file or a CSV file of bans. Refused lines are
// returned as listfile.LineErrors (with file, line and reason); the error
// is only a read error or an unknown format.
func ParseImport(r io.Reader, name, format string) ([]ImportEntry, []listfile.LineError, int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if format == "" {
		format = "list"
		head, _ := br.Peek(64 << 10)
		for _, line := range bytes.Split(head, []byte("\n")) {
			if i := bytes.IndexAny(line, "#;"); i >= 0 {
				line = line[:i]
			}
			if line = bytes.TrimSpace(line); len(line) > 0 {
				if bytes.ContainsRune(line, ',') {
					format = "csv"
				}
				break
			}
		}
	}
	switch format {
	case "list":
		return parseImportList(br, name)
	case "csv":
		return parseImportCSV(br, name)
	}
	return nil, nil, 0, fmt.Errorf("import format %q: want list, csv or empty (guess)", format)
}

// parseImportList reads a list file as listfile does, keeping each entry's
// line number for the checks that follow.
func parseImportList(br *bufio.Reader, name string) ([]ImportEntry, []listfile.LineError, int, error) {
	var out []ImportEntry
	var rejected []listfile.LineError
	count := 0
	opts := listfile.Options{AllowBroad: true}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 64<<10), listfile.DefaultMaxLineBytes+1)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		field := text
		if i := strings.IndexAny(field, "#;"); i >= 0 {
			field = field[:i]
		}
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		ps, err := listfile.ParseEntry(field, opts)
		if err == nil && strings.ContainsAny(field, " \t\r\v\f") {
			err = errors.New("unexpected text after the address")
		}
		if err != nil {
			count++
			if len(rejected) < 1000 {
				rejected = append(rejected, listfile.LineError{File: name, Line: line, Text: clip(strings.TrimSpace(text)), Reason: err.Error()})
			}
			continue
		}
		for _, p := range ps {
			if p != p.Masked() {
				count++
				if len(rejected) < 1000 {
					rejected = append(rejected, listfile.LineError{File: name, Line: line, Text: clip(field),
						Reason: fmt.Sprintf("prefix %s has host bits set (did you mean %s?)", p, p.Masked())})
				}
				continue
			}
			out = append(out, ImportEntry{Line: line, Prefix: p})
		}
	}
	if err := sc.Err(); err != nil {
		return out, rejected, count, fmt.Errorf("%s: line %d: %w", name, line+1, err)
	}
	return out, rejected, count, nil
}

func parseImportCSV(r io.Reader, name string) ([]ImportEntry, []listfile.LineError, int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	var out []ImportEntry
	var rejected []listfile.LineError
	count := 0
	reject := func(line int, text, why string) {
		count++
		if len(rejected) < 1000 {
			rejected = append(rejected, listfile.LineError{File: name, Line: line, Text: clip(text), Reason: why})
		}
	}
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, rejected, count, nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			reject(pe.Line, "", pe.Err.Error())
			continue
		}
		if err != nil {
			return out, rejected, count, fmt.Errorf("%s: read: %w", name, err)
		}
		line, _ := cr.FieldPos(0) // a record read without error has a field
		if first && strings.EqualFold(strings.TrimSpace(rec[0]), "prefix") {
			first = false
			continue
		}
		first = false
		text := strings.Join(rec, ",")
		if len(rec) > 3 {
			reject(line, text, "want prefix,ttl,reason (at most 3 fields)")
			continue
		}
		p, err := ParsePrefix(rec[0])
		if err != nil {
			reject(line, text, err.Error())
			continue
		}
		e := ImportEntry{Line: line, Prefix: p}
		if len(rec) > 1 && strings.TrimSpace(rec[1]) != "" {
			d, err := config.ParseDuration(strings.TrimSpace(rec[1]))
			if err != nil || d <= 0 {
				reject(line, text, fmt.Sprintf("ttl %q: want a positive duration such as 1h or 7d", clip(rec[1])))
				continue
			}
			e.TTL = d
		}
		if len(rec) > 2 {
			if err := CheckReason(rec[2]); err != nil {
				reject(line, text, err.Error())
				continue
			}
			e.Reason = rec[2]
		}
		out = append(out, e)
	}
}

// errStore marks a failed store write (503, not the caller's fault).
var errStore = errors.New("store write failed")

// ErrImportRefused: some entries were refused and SkipInvalid was not set;
// nothing was written.
var ErrImportRefused = errors.New("entries refused, nothing imported")

// Import bans every entry of r in one store commit (one durable write,
// one published change). Each entry passes the checks of a ban
// ([CheckBannable], the policy's width, fleet hosts unless forced).
func (s *Server) Import(ctx context.Context, r io.Reader, o ImportOptions, by string) (adminapi.ImportResult, error) {
	if o.Name == "" {
		o.Name = "import"
	}
	if err := CheckReason(o.Reason); err != nil {
		return adminapi.ImportResult{}, err
	}
	entries, rejected, nrej, err := ParseImport(r, o.Name, o.Format)
	if err != nil {
		return adminapi.ImportResult{}, err
	}
	defTTL := o.TTL
	if defTTL == 0 {
		defTTL = s.cfg.Policy.ManualTTL
	}
	now := s.cfg.Now()
	muts := make([]store.Mutation, 0, len(entries))
	decs := make([]store.Decision, len(entries))
	index := make(map[netip.Prefix]int, len(entries))
	for _, e := range entries {
		err := s.checkEntry(e.Prefix)
		if err == nil && !o.Force {
			err = s.fleetError(e.Prefix)
		}
		if err != nil {
			nrej++
			if len(rejected) < 1000 {
				rejected = append(rejected, listfile.LineError{File: o.Name, Line: e.Line, Text: e.Prefix.String(), Reason: err.Error()})
			}
			continue
		}
		ttl, reason := defTTL, o.Reason
		if e.TTL > 0 {
			ttl = e.TTL
		}
		if e.Reason != "" {
			reason = e.Reason
		}
		d := store.Decision{Prefix: e.Prefix, Action: store.ActionBan, Source: SourceManual, Reason: reason, Created: now}
		if ttl > 0 {
			d.Expires = now.Add(ttl)
		}
		if i, dup := index[e.Prefix]; dup { // the last line for a prefix wins
			decs[i] = d
			continue
		}
		index[e.Prefix] = len(muts)
		decs[len(muts)] = d
		muts = append(muts, store.Mutation{Op: store.PutDecision, Decision: &decs[len(muts)]})
	}
	res := adminapi.ImportResult{RejectedCount: nrej}
	for i, le := range rejected {
		if i == 20 {
			break
		}
		res.Rejected = append(res.Rejected, le.Error())
	}
	if nrej > 0 && !o.SkipInvalid {
		first := res.Rejected[:min(5, len(res.Rejected))]
		return res, fmt.Errorf("%d of %d entries refused, nothing imported (import the rest with skip-invalid): %s%w",
			nrej, nrej+len(muts), strings.Join(first, "; "), errSep(ErrImportRefused))
	}
	// In key order, an embedded B+tree appends instead of moving every
	// key of a growing page on each insert (100,000 random keys: 78 s
	// unsorted against well under a second sorted, on bbolt).
	type keyed struct {
		key string
		m   store.Mutation
	}
	ks := make([]keyed, len(muts))
	for i, m := range muts {
		ks[i] = keyed{m.Decision.Key(), m}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	for i := range ks {
		muts[i] = ks[i].m
	}
	start := time.Now()
	if _, err := s.eng.apply(ctx, muts); err != nil {
		return res, fmt.Errorf("%w: %w", errStore, err)
	}
	res.Imported = len(muts)
	res.Version = s.Version()
	s.log.Info("blocklistd: import", "by", by, "name", o.Name, "imported", len(muts), "refused", nrej,
		"took", time.Since(start).Round(time.Millisecond), "version", res.Version)
	return res, nil
}

// errSep wraps a sentinel so that it is matched by errors.Is without
// repeating its text in the message.
func errSep(err error) error { return quietErr{err} }

type quietErr struct{ error }

func (q quietErr) Error() string { return "" }
func (q quietErr) Unwrap() error { return q.error }

func (s *Server) handleImport(w http.ResponseWriter, r *http.Request, c caller) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(5 * time.Minute))
	q := r.URL.Query()
	o := ImportOptions{Name: q.Get("name"), Format: q.Get("format"), Reason: q.Get("reason"),
		SkipInvalid: q.Get("skip_invalid") == "1", Force: q.Get("force") == "1"}
	if len(o.Name) > 200 || CheckReason(o.Name) != nil {
		o.Name = "import"
	}
	if ts := q.Get("ttl"); ts != "" {
		d, err := config.ParseDuration(ts)
		if err != nil || d <= 0 {
			s.refuse(w, r, c.name, http.StatusBadRequest, fmt.Sprintf("import: ttl %q: want a positive duration such as 1h or 7d", clip(ts)))
			return
		}
		o.TTL = d
	}
	body := http.MaxBytesReader(w, r.Body, MaxImportBytes)
	res, err := s.Import(r.Context(), body, o, c.name)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		s.refuse(w, r, c.name, http.StatusRequestEntityTooLarge, fmt.Sprintf("import: body larger than %d bytes; split it", MaxImportBytes))
	case errors.Is(err, errStore):
		s.storeFailed(w, "import", err)
	case err != nil:
		s.refuse(w, r, c.name, http.StatusBadRequest, "import: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, res)
	}
}
