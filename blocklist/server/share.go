package server

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Share is a fraction written as a percentage ("50%") or a number from 0
// to 1 (0.5).
type Share float64

// UnmarshalYAML implements yaml.Unmarshaler.
func (sh *Share) UnmarshalYAML(n *yaml.Node) error {
	v := strings.TrimSpace(n.Value)
	pct := strings.HasSuffix(v, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("line %d: %q: want a percentage such as 50%% or a number from 0 to 1", n.Line, n.Value)
	}
	if pct {
		f /= 100
	}
	*sh = Share(f)
	return nil
}

func (sh *Share) String() string { return strconv.FormatFloat(100*float64(*sh), 'g', -1, 64) + "%" }
