package guard_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/guard"
)

// TestLockEventsInvariants drives a Guard with seeded random failures,
// checks, successes and clock steps, and checks against a reference:
//   - lock and unlock events alternate for each key, starting with a lock;
//   - a user named only by failures the caller attributes to the source
//     (wrong keys, Fail with no user) is never locked;
//   - whenever Lockout says locked, the last event for that key is a lock
//     whose Until is still ahead;
//   - after the clock passes every lockout and Sweep runs, every lock has
//     its unlock.
func TestLockEventsInvariants(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 13))
			c := &clock{t: time.Unix(1e9, 0)}
			last := map[string]guard.Event{}
			var events int
			check := func(ev guard.Event) {
				events++
				key := ev.Kind + ":" + ev.Source.String() + ev.User
				prev, seen := last[key]
				switch {
				case ev.Locked && seen && prev.Locked:
					t.Fatalf("%s locked twice without an unlock", key)
				case !ev.Locked && (!seen || !prev.Locked):
					t.Fatalf("%s unlocked without a lock", key)
				case ev.Kind == guard.KindUser && ev.User == "victim":
					t.Fatalf("victim locked by failures attributed to sources only: %+v", ev)
				}
				last[key] = ev
			}
			g := guard.New(guard.Config{SourceThreshold: 1 + r.IntN(6), UserThreshold: 1 + r.IntN(4),
				Lockout: time.Duration(1+r.IntN(10)) * time.Minute, Window: time.Duration(1+r.IntN(10)) * time.Minute},
				guard.Options{Now: c.now, OnLock: check})
			srcs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("::ffff:192.0.2.3")}
			users := []string{"alice", "bob"}
			for range 2000 {
				s := srcs[r.IntN(len(srcs))]
				switch r.IntN(6) {
				case 0: // a wrong key for the victim: the source's failure only
					g.Fail(s, "", "wrong key for victim")
				case 1: // a wrong second factor after the user's own key
					g.Fail(s, users[r.IntN(len(users))], "second factor failed")
				case 2:
					g.Success(users[r.IntN(len(users))])
				case 3:
					c.advance(time.Duration(r.IntN(120)) * time.Second)
				case 4:
					g.Sweep()
				default:
					u := append(users, "victim")[r.IntN(3)]
					l, locked := g.Lockout(s, u)
					if !locked {
						continue
					}
					key := l.Kind + ":" + s.Unmap().String()
					if l.Kind == guard.KindUser {
						key = l.Kind + ":" + netip.Addr{}.String() + u
					}
					if ev := last[key]; !ev.Locked || !c.now().Before(ev.Until) || !ev.Until.Equal(l.Until) {
						t.Fatalf("Lockout(%v, %s) = %+v but the last event for %s is %+v", s, u, l, key, ev)
					}
				}
			}
			c.advance(time.Hour)
			g.Sweep()
			for key, ev := range last {
				if ev.Locked {
					t.Errorf("%s: no unlock after every lockout ended", key)
				}
			}
			if events == 0 {
				t.Error("no lock happened: the sequence tests nothing")
			}
		})
	}
}

func TestUnlockNoticedByNextLook(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	var got []guard.Event
	g := guard.New(guard.Config{SourceThreshold: 2, Lockout: time.Minute}, guard.Options{Now: c.now, OnLock: func(ev guard.Event) { got = append(got, ev) }})
	g.Fail(src, "", "x")
	g.Fail(src, "", "x")
	if len(got) != 1 || !got[0].Locked || got[0].Kind != guard.KindSource || got[0].Source != src || got[0].Failures != 2 {
		t.Fatalf("lock event: %+v", got)
	}
	c.advance(time.Minute)
	if _, locked := g.Lockout(src, ""); locked {
		t.Fatal("still locked")
	}
	if len(got) != 2 || got[1].Locked || got[1].Source != src {
		t.Fatalf("unlock event: %+v", got)
	}
}
