package pki_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

// BenchmarkIssuance measures certificates per second over the HTTP API with
// 24 h certificates and concurrent clients, each with its own connection.
// Tokens and the request are prepared before the clock starts.
func BenchmarkIssuance(b *testing.B) {
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			c := newCA(b, st.dsn(b), "")
			clients := 32
			if v := os.Getenv("PKI_BENCH_CLIENTS"); v != "" {
				clients, _ = strconv.Atoi(v)
			}
			n := 3000
			if st.name == "postgresql" {
				n = 1500
			}
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csr, err := client.NewCSR(key, "bench.rampart.test", []string{"bench.rampart.test"})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				tokens := make(chan string, n)
				for j := 0; j < n; j++ {
					tokens <- c.token("bench.rampart.test", []string{"bench.rampart.test"})
				}
				close(tokens)
				var failed atomic.Int64
				var wg sync.WaitGroup
				b.StartTimer()
				cpu0 := cpuSeconds()
				start := time.Now()
				for w := 0; w < clients; w++ {
					cl := c.client()
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer cl.CloseIdleConnections()
						for tok := range tokens {
							if _, err := cl.Sign(context.Background(), csr, tok, 24*time.Hour); err != nil {
								if failed.Add(1) == 1 {
									b.Error(err)
								}
							}
						}
					}()
				}
				wg.Wait()
				el := time.Since(start)
				b.ReportMetric(float64(n)/el.Seconds(), "certs/s")
				// The CPU is shared (other tests, the client goroutines in this
				// process): certificates per CPU-second of this process is the
				// figure that does not depend on the neighbours.
				b.ReportMetric(float64(n)/(cpuSeconds()-cpu0), "certs/cpu-s")
				b.ReportMetric(float64(failed.Load()), "failures")
			}
		})
	}
}

// BenchmarkRenewBurst: 1,000 hosts renew at the same moment, each over its
// own mTLS connection; reports the time until the last one has its new
// certificate.
func BenchmarkRenewBurst(b *testing.B) {
	c := newCA(b, "", "")
	const hosts = 1000
	cl := c.client()
	root := c.srv.Root()
	bundles := make([]*client.Bundle, hosts)
	for i := range bundles {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		name := fmt.Sprintf("h%d.rampart.test", i)
		csr, _ := client.NewCSR(key, name, []string{name})
		chain, err := cl.Sign(context.Background(), csr, c.token(name, []string{name}), 24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		bundles[i] = &client.Bundle{Key: key, Chain: chain, Root: root}
	}
	cl.CloseIdleConnections()
	for i := 0; i < b.N; i++ {
		var failed, retries atomic.Int64
		var wg sync.WaitGroup
		startGate := make(chan struct{})
		for _, bd := range bundles {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hc := c.client()
				defer hc.CloseIdleConnections()
				<-startGate
				// Like the renew daemon: retry with backoff when the CA is
				// too busy to finish the handshake in time.
				backoff := 100 * time.Millisecond
				for attempt := 1; ; attempt++ {
					_, err := hc.Renew(context.Background(), bd)
					if err == nil {
						return
					}
					if attempt == 20 {
						if failed.Add(1) == 1 {
							b.Error(err)
						}
						return
					}
					retries.Add(1)
					time.Sleep(backoff/2 + time.Duration(mrand.Int64N(int64(backoff))))
					backoff = min(2*backoff, 5*time.Second)
				}
			}()
		}
		b.ResetTimer()
		cpu0 := cpuSeconds()
		start := time.Now()
		close(startGate)
		wg.Wait()
		el := time.Since(start)
		b.ReportMetric(el.Seconds(), "drain-s")
		b.ReportMetric(float64(hosts)/el.Seconds(), "renewals/s")
		b.ReportMetric(cpuSeconds()-cpu0, "cpu-s")
		b.ReportMetric(float64(retries.Load()), "retries")
		b.ReportMetric(float64(failed.Load()), "failures")
	}
}

func rssMB(b testing.TB, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkIdleRSS starts `pki serve` and `pki renew --daemon` (from the
// full binary and from the host-only -tags pkiclient build) and reports
// their resident memory once idle.
func BenchmarkIdleRSS(b *testing.B) {
	full := pkiBinary(b)
	small := filepath.Join(filepath.Dir(full), "pki-client")
	cmd := exec.Command("go", "build", "-tags", "pkiclient", "-o", small, "./cmd/pki")
	cmd.Dir = testenv.ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build pkiclient: %v\n%s", err, out)
	}
	c := newCA(b, "", "")
	dir := filepath.Join(b.TempDir(), "host")
	if _, err := client.Bootstrap(context.Background(), c.url, c.fp, c.token("idle.rampart.test", nil), dir, client.BootstrapOptions{}); err != nil {
		b.Fatal(err)
	}
	// A second CA process on the same files would fight over bbolt's lock:
	// pki serve gets its own CA.
	caDir := b.TempDir()
	port := testenv.FreePort(b)
	runB := func(args ...string) {
		if out, err := exec.Command(full, args...).CombinedOutput(); err != nil {
			b.Fatalf("pki %v: %v\n%s", args, err, out)
		}
	}
	runB("init", "--dir", caDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	for i := 0; i < b.N; i++ {
		for _, p := range []struct {
			metric string
			bin    string
			args   []string
		}{
			{"serve-MB", full, []string{"serve", "--config", filepath.Join(caDir, "pki.yaml")}},
			{"renew-daemon-full-MB", full, []string{"renew", "--daemon", "--dir", dir}},
			{"renew-daemon-pkiclient-MB", small, []string{"renew", "--daemon", "--dir", dir}},
		} {
			ctx, cancel := context.WithCancel(context.Background())
			cmd := exec.CommandContext(ctx, p.bin, p.args...)
			if err := cmd.Start(); err != nil {
				cancel()
				b.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			b.ReportMetric(rssMB(b, cmd.Process.Pid), p.metric)
			cancel()
			_ = cmd.Wait()
		}
	}
}

// cpuSeconds is the user+system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procCPUSeconds reads utime+stime of pid from /proc (clock ticks of 10 ms).
func procCPUSeconds(b testing.TB, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// BenchmarkIssuanceServerProcess runs `pki serve` (bbolt) as its own
// process so the CA's CPU time per certificate can be measured apart from
// the clients': server-certs/cpu-s is how many certificates one fully
// available core issues.
func BenchmarkIssuanceServerProcess(b *testing.B) {
	bin := pkiBinary(b)
	dir := b.TempDir()
	port := testenv.FreePort(b)
	if out, err := exec.Command(bin, "init", "--dir", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port)).CombinedOutput(); err != nil {
		b.Fatalf("init: %v\n%s", err, out)
	}
	cfg, err := ca.LoadConfig(filepath.Join(dir, ca.ConfigFile))
	if err != nil {
		b.Fatal(err)
	}
	fp, _ := cfg.RootFingerprint()
	prov, err := cfg.LoadProvisioner(fp)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, bin, "serve", "--config", filepath.Join(dir, ca.ConfigFile), "--log-level", "warn")
	if err := srv.Start(); err != nil {
		cancel()
		b.Fatal(err)
	}
	defer func() { cancel(); _ = srv.Wait() }()
	root, err := client.FetchRoot(ctx, cfg.URL, fp)
	for i := 0; err != nil && i < 100; i++ {
		time.Sleep(100 * time.Millisecond)
		root, err = client.FetchRoot(ctx, cfg.URL, fp)
	}
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := client.NewCSR(key, "bench.rampart.test", []string{"bench.rampart.test"})
	const n, clients = 3000, 32
	for i := 0; i < b.N; i++ {
		tokens := make(chan string, n)
		for j := 0; j < n; j++ {
			tok, err := prov.Token(cfg.URL, client.TokenRequest{Subject: "bench.rampart.test", TTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			tokens <- tok
		}
		close(tokens)
		var failed atomic.Int64
		var wg sync.WaitGroup
		cpu0 := procCPUSeconds(b, srv.Process.Pid)
		start := time.Now()
		for w := 0; w < clients; w++ {
			cl, err := client.New(cfg.URL, poolOf(root))
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cl.CloseIdleConnections()
				for tok := range tokens {
					if _, err := cl.Sign(ctx, csr, tok, 24*time.Hour); err != nil && failed.Add(1) == 1 {
						b.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		b.ReportMetric(float64(n)/el.Seconds(), "certs/s")
		b.ReportMetric(float64(n)/(procCPUSeconds(b, srv.Process.Pid)-cpu0), "server-certs/cpu-s")
		b.ReportMetric(float64(failed.Load()), "failures")
	}
}
