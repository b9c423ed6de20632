package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	pgxstdlib "github.com/jackc/pgx/v5/stdlib"
	"github.com/smallstep/nosql/database"
)

// pgStore is smallstep's nosql.DB on PostgreSQL with the same schema as
// nosql's own driver (one table per bucket: nkey BYTEA primary key, nvalue
// BYTEA), so the database stays a valid step-ca database. It differs in two
// ways that matter for one-time tokens:
//
//   - CmpAndSwap is a single atomic statement. nosql's driver reads with
//     SELECT … FOR UPDATE and then upserts; when the row does not exist yet
//     (a token's first use) the SELECT locks nothing, so two concurrent
//     uses of one token, on one replica or two, can both "swap" and both
//     succeed. Here the first use is INSERT … ON CONFLICT DO NOTHING: exactly
//     one caller inserts the row.
//   - The connection pool keeps idle connections (database/sql keeps 2 by
//     default, so 32 concurrent requests churned through new PostgreSQL
//     backends).
type pgStore struct {
	db *sql.DB
}

const pgTimeout = 30 * time.Second

func openPGStore(ctx context.Context, dsn, database string) (*pgStore, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgresql dsn: %w", err)
	}
	if database != "" {
		cfg.Database = database
	}
	db := pgxstdlib.OpenDB(*cfg)
	err = db.PingContext(ctx)
	if err != nil && strings.Contains(err.Error(), "SQLSTATE 3D000") {
		db.Close()
		if err := createPGDatabase(ctx, cfg); err != nil {
			return nil, err
		}
		db = pgxstdlib.OpenDB(*cfg)
		err = db.PingContext(ctx)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgresql database %q: %w", cfg.Database, err)
	}
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &pgStore{db: db}, nil
}

// createPGDatabase creates the CA's database, as several replicas started
// at once on a fresh server all try to. PostgreSQL copies template1 and
// refuses (SQLSTATE 55006, "source database template1 is being accessed
// by other users") while any other session is connected to it, so the
// statement is sent from the "postgres" database (template1 only where
// that does not exist), and a 55006 caused by another replica is retried
// with jittered backoff until the database exists (42P04 then says
// another replica created it), as is a 23505 from two CREATE DATABASE
// racing to the catalog.
func createPGDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	name := cfg.Database
	if name == "" {
		name = cfg.User
	}
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := createPGDatabaseOnce(ctx, cfg, name)
		if err == nil || strings.Contains(err.Error(), "SQLSTATE 42P04") {
			return nil
		}
		// 55006: someone is connected to template1. 23505: another
		// replica's CREATE DATABASE of the same name committed first (on
		// pg_database_datname_index); the next attempt says 42P04.
		if !strings.Contains(err.Error(), "SQLSTATE 55006") && !strings.Contains(err.Error(), "SQLSTATE 23505") || attempt == 30 {
			return fmt.Errorf("create postgresql database %q: %w", name, err)
		}
		d := delay/2 + time.Duration(mathrand.Int64N(int64(delay)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("create postgresql database %q: %w (after %v)", name, ctx.Err(), err)
		case <-time.After(d):
		}
		delay = min(2*delay, time.Second)
	}
}

func createPGDatabaseOnce(ctx context.Context, cfg *pgx.ConnConfig, name string) error {
	tmp := cfg.Copy()
	tmp.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, tmp)
	if err != nil && strings.Contains(err.Error(), "SQLSTATE 3D000") {
		tmp.Database = "template1"
		conn, err = pgx.ConnectConfig(ctx, tmp)
	}
	if err != nil {
		return fmt.Errorf("connect to postgresql to create it: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

func table(bucket []byte) string {
	return pgx.Identifier(strings.Split(string(bucket), ".")).Sanitize()
}

func pgCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), pgTimeout)
}

func (s *pgStore) Open(string, ...database.Option) error { return nil }
func (s *pgStore) Close() error                          { return s.db.Close() }

func (s *pgStore) CreateTable(bucket []byte) error {
	ctx, cancel := pgCtx()
	defer cancel()
	// Two replicas creating the same table at once can both pass "IF NOT
	// EXISTS" and one then fails on the catalog: 23505 (a unique index),
	// 42P07 (relation exists) or 42710 (its row type exists). The table
	// exists either way, which a retry confirms.
	var err error
	for range 5 {
		_, err = s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+table(bucket)+" (nkey BYTEA CHECK (octet_length(nkey) <= 255), nvalue BYTEA, PRIMARY KEY (nkey))")
		if err == nil || !slices.ContainsFunc([]string{"23505", "42P07", "42710"}, func(code string) bool { return strings.Contains(err.Error(), "SQLSTATE "+code) }) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create table %s: %w", bucket, err)
	}
	return nil
}

func (s *pgStore) DeleteTable(bucket []byte) error {
	ctx, cancel := pgCtx()
	defer cancel()
	if _, err := s.db.ExecContext(ctx, "DROP TABLE "+table(bucket)); err != nil {
		if strings.Contains(err.Error(), "SQLSTATE 42P01") {
			return fmt.Errorf("table %s: %w", bucket, database.ErrNotFound)
		}
		return fmt.Errorf("drop table %s: %w", bucket, err)
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func pgGet(ctx context.Context, q querier, bucket, key []byte) ([]byte, error) {
	var v []byte
	err := q.QueryRowContext(ctx, "SELECT nvalue FROM "+table(bucket)+" WHERE nkey = $1", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s/%s: %w", bucket, key, database.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", bucket, key, err)
	}
	return v, nil
}

func pgSet(ctx context.Context, q querier, bucket, key, value []byte) error {
	_, err := q.ExecContext(ctx, "INSERT INTO "+table(bucket)+" (nkey, nvalue) VALUES ($1, $2) ON CONFLICT (nkey) DO UPDATE SET nvalue = excluded.nvalue", key, value)
	if err != nil {
		return fmt.Errorf("set %s/%s: %w", bucket, key, err)
	}
	return nil
}

// pgCmpAndSwap swaps atomically: a row is inserted only if absent (oldValue
// nil), updated only if it still holds oldValue.
func pgCmpAndSwap(ctx context.Context, q querier, bucket, key, oldValue, newValue []byte) ([]byte, bool, error) {
	var res sql.Result
	var err error
	if oldValue == nil {
		res, err = q.ExecContext(ctx, "INSERT INTO "+table(bucket)+" (nkey, nvalue) VALUES ($1, $2) ON CONFLICT (nkey) DO NOTHING", key, newValue)
	} else {
		res, err = q.ExecContext(ctx, "UPDATE "+table(bucket)+" SET nvalue = $3 WHERE nkey = $1 AND nvalue = $2", key, oldValue, newValue)
	}
	if err != nil {
		return nil, false, fmt.Errorf("CmpAndSwap %s/%s: %w", bucket, key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, false, fmt.Errorf("CmpAndSwap %s/%s: %w", bucket, key, err)
	} else if n == 1 {
		return newValue, true, nil
	}
	cur, err := pgGet(ctx, q, bucket, key)
	if errors.Is(err, database.ErrNotFound) {
		return nil, false, nil
	}
	return cur, false, err
}

func (s *pgStore) Get(bucket, key []byte) ([]byte, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	return pgGet(ctx, s.db, bucket, key)
}

func (s *pgStore) Set(bucket, key, value []byte) error {
	ctx, cancel := pgCtx()
	defer cancel()
	return pgSet(ctx, s.db, bucket, key, value)
}

func (s *pgStore) Del(bucket, key []byte) error {
	ctx, cancel := pgCtx()
	defer cancel()
	if _, err := s.db.ExecContext(ctx, "DELETE FROM "+table(bucket)+" WHERE nkey = $1", key); err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (s *pgStore) List(bucket []byte) ([]*database.Entry, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	rows, err := s.db.QueryContext(ctx, "SELECT nkey, nvalue FROM "+table(bucket))
	if err != nil {
		if strings.Contains(err.Error(), "SQLSTATE 42P01") {
			return nil, fmt.Errorf("table %s: %w", bucket, database.ErrNotFound)
		}
		return nil, fmt.Errorf("list %s: %w", bucket, err)
	}
	defer rows.Close()
	var out []*database.Entry
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("list %s: %w", bucket, err)
		}
		out = append(out, &database.Entry{Bucket: bucket, Key: k, Value: v})
	}
	return out, rows.Err()
}

func (s *pgStore) CmpAndSwap(bucket, key, oldValue, newValue []byte) ([]byte, bool, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	return pgCmpAndSwap(ctx, s.db, bucket, key, oldValue, newValue)
}

func (s *pgStore) Update(tx *database.Tx) (err error) {
	ctx, cancel := pgCtx()
	defer cancel()
	stx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = stx.Rollback()
		}
	}()
	for _, q := range tx.Operations {
		switch q.Cmd {
		case database.CreateTable:
			_, err = stx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+table(q.Bucket)+" (nkey BYTEA CHECK (octet_length(nkey) <= 255), nvalue BYTEA, PRIMARY KEY (nkey))")
		case database.DeleteTable:
			_, err = stx.ExecContext(ctx, "DROP TABLE "+table(q.Bucket))
		case database.Get:
			q.Result, err = pgGet(ctx, stx, q.Bucket, q.Key)
		case database.Set:
			err = pgSet(ctx, stx, q.Bucket, q.Key, q.Value)
		case database.Delete:
			_, err = stx.ExecContext(ctx, "DELETE FROM "+table(q.Bucket)+" WHERE nkey = $1", q.Key)
		case database.CmpAndSwap:
			q.Result, q.Swapped, err = pgCmpAndSwap(ctx, stx, q.Bucket, q.Key, q.CmpValue, q.Value)
		default:
			err = database.ErrOpNotSupported
		}
		if err != nil {
			return fmt.Errorf("update %s: %w", q.Bucket, err)
		}
	}
	if err = stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

var _ database.DB = (*pgStore)(nil)
