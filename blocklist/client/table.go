package client

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"
)

// WriteTable prints l for a terminal, as "blocklistd list" does: a
// summary line, then one aligned row per decision and allowlist entry.
// Sources and reasons pass through [SafeText].
func (l Listing) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	shown := fmt.Sprintf("%d decisions", len(l.Decisions))
	if l.Total > len(l.Decisions) {
		shown = fmt.Sprintf("%d of %d decisions", len(l.Decisions), l.Total)
	}
	fmt.Fprintf(tw, "version %d: %s, %d allowlisted\n", l.Version, shown, len(l.Allow))
	fmt.Fprintln(tw, "PREFIX\tACTION\tSOURCE\tEXPIRES\tREASON")
	for _, d := range l.Decisions {
		exp := "never"
		if !d.Expires.IsZero() {
			exp = d.Expires.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Prefix, d.Action, SafeText(d.Source), exp, SafeText(d.Reason))
	}
	for _, a := range l.Allow {
		fmt.Fprintf(tw, "%s\tallow\t-\tnever\t%s\n", a.Prefix, SafeText(a.Reason))
	}
	return tw.Flush()
}

// SafeText returns s as it is when it holds only printable characters
// and spaces, and Go-quoted otherwise (control characters, bidi
// overrides), so a reason recorded by an older version or another writer
// cannot rewrite the operator's terminal.
func SafeText(s string) string {
	for _, r := range s {
		if r != ' ' && !unicode.IsPrint(r) {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
