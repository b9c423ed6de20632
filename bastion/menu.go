package bastion

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MenuWidth is the widest line the menu writes: a phone terminal in
// portrait (Termius, Blink, JuiceSSH) shows about 40 columns.
const MenuWidth = 40

// Menu is what a bare "ssh alice@bastion" is shown: the targets it can
// pick here (recorded sessions, numbered) and, apart and unnumbered, the
// jump-only ones, which are reached with ssh -J from a computer and so
// are never offered as a choice that would fail.
type Menu struct {
	Choices  []*Target // numbered 1..len
	JumpOnly []*Target
}

// NewMenu splits targets into choices and jump-only ones.
func NewMenu(targets []*Target) Menu {
	var m Menu
	for _, t := range targets {
		if t.Allows(ModeRecord) {
			m.Choices = append(m.Choices, t)
		} else {
			m.JumpOnly = append(m.JumpOnly, t)
		}
	}
	return m
}

// Lines renders the menu for user, every line at most MenuWidth columns.
func (m Menu) Lines(user string) []string {
	lines := []string{fit("Rampart bastion: " + user)}
	if len(m.Choices) == 0 && len(m.JumpOnly) == 0 {
		return append(lines, "You have no targets.", "Ask an administrator.")
	}
	width := 0
	for _, t := range append(append([]*Target{}, m.Choices...), m.JumpOnly...) {
		width = max(width, utf8.RuneCountInString(t.Name))
	}
	width = min(width, 14)
	entry := func(mark string, t *Target) string {
		name := t.Name
		if utf8.RuneCountInString(name) > width {
			// Long names keep their own line: the number still picks it.
			return fit(mark + name)
		}
		return fit(mark + name + strings.Repeat(" ", width-utf8.RuneCountInString(name)) + " " + t.Description)
	}
	if len(m.Choices) > 0 {
		lines = append(lines, "", "Sessions (recorded):")
		for i, t := range m.Choices {
			lines = append(lines, entry(fmt.Sprintf("  %2d) ", i+1), t))
		}
	}
	if len(m.JumpOnly) > 0 {
		lines = append(lines, "", "Jump only (ssh -J from a computer):")
		for _, t := range m.JumpOnly {
			lines = append(lines, entry("   -  ", t))
		}
	}
	return lines
}

// fit cuts s to MenuWidth columns (runes), marking the cut.
func fit(s string) string {
	// Descriptions come from the config, but a terminal is no place for
	// control bytes whatever their source.
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimRight(s, " "))
	if utf8.RuneCountInString(s) <= MenuWidth {
		return s
	}
	r := []rune(s)
	return string(r[:MenuWidth-1]) + "…"
}
