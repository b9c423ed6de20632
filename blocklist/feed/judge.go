package feed

import (
	"fmt"
	"math"
	"net/netip"
)

// Reasons a fetch is refused, as metric labels.
const (
	// ReasonFetch: the transport failed, the server answered other than
	// 200 or 304, or the body was too large.
	ReasonFetch = "fetch"
	// ReasonNotAList: binary data, HTML or XML, or mostly rejected lines.
	ReasonNotAList = "not_a_list"
	// ReasonEmpty: no entry, while the feed had some.
	ReasonEmpty = "empty"
	// ReasonShrink: more than Limits.MaxShrink of the entries would go.
	ReasonShrink = "shrink"
	// ReasonStore: the result could not be stored.
	ReasonStore = "store"
)

// DefaultMaxShrink is the share of a feed's entries one fetch may drop.
const DefaultMaxShrink = 0.5

// Limits bound what one fetch may take away from a feed.
type Limits struct {
	// MaxShrink is the largest share (0 to 1) of the current entries one
	// fetch may remove; 0 means DefaultMaxShrink, 1 or more no limit.
	MaxShrink float64
	// AllowEmpty accepts a list without entries even when the feed had
	// some (a feed that is legitimately empty at times).
	AllowEmpty bool
}

func (l Limits) maxShrink() float64 {
	if l.MaxShrink <= 0 {
		return DefaultMaxShrink
	}
	return l.MaxShrink
}

// MaxRemovable is how many of prev entries one fetch may remove.
func (l Limits) MaxRemovable(prev int) int {
	s := l.maxShrink()
	if s >= 1 {
		return prev
	}
	// The share is usually a round percentage; the epsilon keeps 0.29*100
	// (28.999...) from flooring to 28.
	return int(math.Floor(s*float64(prev) + 1e-6))
}

// Refusal says why a fetch was not taken; the feed keeps its previous
// entries.
type Refusal struct {
	Feed   string
	Reason string // one of the Reason constants
	Detail string
	// Removed and Prev describe a shrink or empty refusal.
	Removed, Prev int
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("feed %s refused (%s): %s", r.Feed, r.Reason, r.Detail)
}

// Judge decides whether next (sorted, without duplicates, as Parse returns
// it) may replace prev (sorted, without duplicates), the feed's current
// entries; rejected counts the lines refused while reading next. It
// returns nil or a [*Refusal]:
//
//   - ReasonNotAList when more lines were rejected than entries accepted;
//   - ReasonEmpty when next is empty and prev is not, unless
//     limits.AllowEmpty or force;
//   - ReasonShrink when next is not empty and leaves out more than
//     limits.MaxRemovable of prev, unless force.
//
// So without force, an accepted next always keeps at least
// len(prev) - limits.MaxRemovable(len(prev)) of prev's entries.
func Judge(name string, prev, next []netip.Prefix, rejected int, limits Limits, force bool) error {
	if rejected > 0 && rejected > len(next) {
		return &Refusal{Feed: name, Reason: ReasonNotAList, Prev: len(prev),
			Detail: fmt.Sprintf("%d lines rejected, %d entries accepted: mostly not a list", rejected, len(next))}
	}
	if len(next) == 0 && len(prev) > 0 && !limits.AllowEmpty && !force {
		return &Refusal{Feed: name, Reason: ReasonEmpty, Prev: len(prev), Removed: len(prev),
			Detail: fmt.Sprintf("no entries, while the feed has %d (accept it with `blocklistd feed accept %s` or allow_empty)", len(prev), name)}
	}
	if len(next) == 0 {
		return nil // allowed to be empty, or forced
	}
	removed := Removed(prev, next)
	if max := limits.MaxRemovable(len(prev)); removed > max && !force {
		return &Refusal{Feed: name, Reason: ReasonShrink, Prev: len(prev), Removed: removed,
			Detail: fmt.Sprintf("would remove %d of %d entries, more than max_shrink %g%% allows (%d); accept it with `blocklistd feed accept %s`",
				removed, len(prev), 100*limits.maxShrink(), max, name)}
	}
	return nil
}

// Removed counts the prefixes of prev (sorted, unique) missing from next
// (sorted, unique).
func Removed(prev, next []netip.Prefix) int {
	n, j := 0, 0
	for _, p := range prev {
		for j < len(next) && ComparePrefix(next[j], p) < 0 {
			j++
		}
		if j < len(next) && next[j] == p {
			continue
		}
		n++
	}
	return n
}
