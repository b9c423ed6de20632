package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// Reader reads a log record by record, checking the chain as [Verify]
// does, for importers (a SIEM shipper, a report) that need the records
// themselves and each one's hash, e.g. to resume after the last one they
// took.
type Reader struct {
	sc   *bufio.Scanner
	prev string
	n    int
	err  error
}

// NewReader reads the log in r from its first line.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &Reader{sc: sc, prev: Genesis}
}

// Next returns the next record with its Prev and Hash set; io.EOF after
// the last one. A line that breaks the chain is a *[BadRecordError]
// (errors.Is(err, [ErrBroken])), and so is every call after it: nothing
// past a break is trusted.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	if !r.sc.Scan() {
		r.err = io.EOF
		if err := r.sc.Err(); err != nil {
			r.err = fmt.Errorf("audit: read line %d: %w", r.n+1, err)
		}
		return Record{}, r.err
	}
	line := r.sc.Bytes()
	if err := CheckLine(line, r.prev); err != nil {
		r.err = &BadRecordError{Line: r.n + 1, Reason: err.Error()}
		return Record{}, r.err
	}
	var rec Record
	if err := json.Unmarshal(line, &rec); err != nil {
		r.err = &BadRecordError{Line: r.n + 1, Reason: err.Error()}
		return Record{}, r.err
	}
	rec.Hash = string(hashSuffix.FindSubmatch(line)[1])
	r.prev = rec.Hash
	r.n++
	return rec, nil
}

// Records returns how many records Next has returned.
func (r *Reader) Records() int { return r.n }
