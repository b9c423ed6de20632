package pki_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-sec/rampart/test/testenv"
)

// Issue 14: two `pki serve` replicas started together on a fresh
// PostgreSQL both exited ("source database template1 is being accessed by
// other users", SQLSTATE 55006): each one's CREATE DATABASE copies
// template1 while the other is connected to it. Two rounds, each on a
// database that does not exist yet: the replicas started at once; then
// the same while a third session sits on template1 for two seconds (an
// administrator's psql, a third replica), which makes every CREATE
// DATABASE fail with 55006 until it leaves. Both replicas must come up
// and issue certificates.
func TestReplicasStartTogetherOnFreshPostgres(t *testing.T) {
	testenv.RequireRoot(t)
	pg := testenv.StartPostgres(t)
	pgLog := filepath.Join(pg.Dir, "postgres.log")
	const busy = `source database "template1" is being accessed by other users`
	for round, holdTemplate := range []bool{false, true} {
		name := fmt.Sprintf("together_%d", round)
		if holdTemplate {
			name += "_template1_busy"
		}
		t.Run(name, func(t *testing.T) {
			c := initBinCA(t, pg.DSN)
			// pki init names the database rampart_pki; each round needs
			// one that does not exist yet.
			data, err := os.ReadFile(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			fresh := fmt.Sprintf("pki_fresh_%d", round)
			edited := regexp.MustCompile(`(?m)^(\s+database:).*$`).ReplaceAllString(string(data), "${1} "+fresh)
			if edited == string(data) {
				t.Fatalf("no store database in %s:\n%s", c.cfg, data)
			}
			os.WriteFile(c.cfg, []byte(edited), 0o600)
			cfgB, urlB := c.replicaConfig(t)
			if holdTemplate {
				pc, err := pgx.ParseConfig(pg.DSN)
				if err != nil {
					t.Fatal(err)
				}
				pc.Database = "template1"
				conn, err := pgx.ConnectConfig(context.Background(), pc)
				if err != nil {
					t.Fatal(err)
				}
				// Leave once a replica's CREATE DATABASE was refused for it
				// (PostgreSQL logs the error), at most after 30 s.
				go func() {
					for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
						if b, _ := os.ReadFile(pgLog); strings.Contains(string(b), busy) {
							break
						}
					}
					conn.Close(context.Background())
				}()
				t.Cleanup(func() { conn.Close(context.Background()) })
			}
			a, b := c.serve(t, c.cfg), c.serve(t, cfgB)
			a.waitServing(t, "replica a")
			b.waitServing(t, "replica b")
			if log, _ := os.ReadFile(pgLog); holdTemplate && !strings.Contains(string(log), busy) {
				t.Fatalf("no CREATE DATABASE was refused with 55006; the round proves nothing:\n%s", log)
			}
			for i, u := range []string{c.url, urlB} {
				tok := c.token(t, fmt.Sprintf("host%d", i), "--san", "localhost", "--ca-url", u)
				out := filepath.Join(t.TempDir(), "host")
				if code, msg := pkiRun(t, c.bin, "bootstrap", "--ca-url", u, "--fingerprint", c.fp, "--token", tok, "--out", out); code != 0 {
					t.Fatalf("bootstrap through replica %d: exit %d\n%s", i, code, msg)
				}
			}
		})
	}
}
