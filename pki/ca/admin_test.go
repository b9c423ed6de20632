package ca

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestParseSerial(t *testing.T) {
	for _, bad := range []string{"", "0", "-5", "0x", "12ab", "0xzz", " 1"} {
		if got, err := ParseSerial(bad); err == nil {
			t.Errorf("ParseSerial(%q) = %q, want an error", bad, got)
		}
	}
	// Decimal and 0x hex of the same random serial read back to the same
	// decimal string (seeded).
	rng := rand.New(rand.NewPCG(15, 7))
	for range 200 {
		n := new(big.Int).SetUint64(rng.Uint64() | 1)
		n.Lsh(n, uint(rng.IntN(96)))
		dec, err1 := ParseSerial(n.String())
		hex, err2 := ParseSerial("0x" + n.Text(16))
		if err1 != nil || err2 != nil || dec != n.String() || hex != n.String() {
			t.Fatalf("serial %s: decimal %q (%v), hex %q (%v)", n, dec, err1, hex, err2)
		}
	}
}
