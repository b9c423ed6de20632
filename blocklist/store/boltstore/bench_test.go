package boltstore_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
)

// BenchmarkCountReport measures how many reports a store counts per second,
// one caller at a time and with 32 callers at once (as blocklistd under a
// burst of reports from many hosts). Each iteration counts a fixed number
// of reports over 256 addresses, so -benchtime 1x gives a figure.
func BenchmarkCountReport(b *testing.B) {
	for _, bc := range []struct {
		name              string
		callers, perCalls int
	}{
		{"sequential", 1, 500},
		{"callers=32", 32, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := boltstore.Open(filepath.Join(b.TempDir(), "blocklistd.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			t0 := time.Now()
			var elapsed time.Duration
			for range b.N {
				start := time.Now()
				var wg sync.WaitGroup
				for c := range bc.callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range bc.perCalls {
							n := c*bc.perCalls + i
							key := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(n)}), 32)
							if _, err := s.CountReport(ctx, key, 1, t0.Add(time.Duration(n)*time.Millisecond), 10*time.Minute); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(b.N*bc.callers*bc.perCalls)/elapsed.Seconds(), "reports/s")
		})
	}
}
