package bastion

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestMenuFitsAPhone: for seeded random target lists (names and
// descriptions of any length, some not ASCII), every line fits 40
// columns, every recorded target is numbered once in order, and no
// jump-only target is ever a number.
func TestMenuFitsAPhone(t *testing.T) {
	numbered := regexp.MustCompile(`^\s+(\d+)\) (.*)$`)
	words := []string{"web", "db", "primary", "frontend", "Ünïcödé", "x", "a-very-long-target-name-indeed", "builder", "東京"}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 9))
		var targets []*Target
		for i := range r.IntN(15) {
			name := fmt.Sprintf("%s%d", words[r.IntN(len(words))], i)
			var desc []string
			for range r.IntN(8) {
				desc = append(desc, words[r.IntN(len(words))])
			}
			modes := []string{ModeJump}
			if r.IntN(2) == 0 {
				modes = append(modes, ModeRecord)
			}
			targets = append(targets, &Target{Name: name, Modes: modes, Description: strings.Join(desc, " ")})
		}
		user := strings.Repeat("u", 1+r.IntN(60))
		m := NewMenu(targets)
		lines := m.Lines(user)
		n := 0
		for _, l := range lines {
			if w := utf8.RuneCountInString(l); w > MenuWidth {
				t.Fatalf("seed %d: line of %d columns: %q", seed, w, l)
			}
			if sub := numbered.FindStringSubmatch(l); sub != nil {
				n++
				if sub[1] != fmt.Sprint(n) || !strings.HasPrefix(sub[2], strings.TrimSuffix(m.Choices[n-1].Name[:min(len(m.Choices[n-1].Name), 10)], "…")) {
					t.Fatalf("seed %d: line %q is not choice %d (%s)", seed, l, n, m.Choices[n-1].Name)
				}
				if !m.Choices[n-1].Allows(ModeRecord) {
					t.Fatalf("seed %d: jump-only %s numbered", seed, m.Choices[n-1].Name)
				}
			}
		}
		if n != len(m.Choices) {
			t.Fatalf("seed %d: %d numbered lines, %d recorded targets:\n%s", seed, n, len(m.Choices), strings.Join(lines, "\n"))
		}
		for _, j := range m.JumpOnly {
			if j.Allows(ModeRecord) || !strings.Contains(strings.Join(lines, "\n"), "-  "+j.Name[:min(len(j.Name), 10)]) {
				t.Fatalf("seed %d: jump-only %s not listed as such:\n%s", seed, j.Name, strings.Join(lines, "\n"))
			}
		}
	}
}
