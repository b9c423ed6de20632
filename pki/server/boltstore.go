package server

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/smallstep/nosql/database"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// boltStore is smallstep's nosql.DB over bbolt with the same bucket layout
// as nosql's own bbolt driver (so the file stays a valid step-ca database),
// but with every write going through bbolt's Batch: concurrent writes (a
// used-token record, a stored certificate) share one transaction and one
// fsync instead of paying one each. A write still returns only after its
// transaction is durable, so a token is never reported as unused after a
// crash.
type boltStore struct {
	db *bolt.DB
}

var boltSep = []byte("/")

func openBoltStore(path string) (*boltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open bbolt store %s: %w", path, err)
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	return &boltStore{db: db}, nil
}

// Open is part of nosql's interface; the store is opened by openBoltStore.
func (s *boltStore) Open(string, ...database.Option) error { return nil }

func (s *boltStore) Close() error { return s.db.Close() }

func bucketOf(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	var b *bolt.Bucket
	for i, n := range bytes.Split(name, boltSep) {
		if i == 0 {
			b = tx.Bucket(n)
		} else {
			b = b.Bucket(n)
		}
		if b == nil {
			return nil, database.ErrNotFound
		}
	}
	return b, nil
}

func createBucket(tx *bolt.Tx, name []byte) error {
	parts := bytes.Split(name, boltSep)
	b, err := tx.CreateBucketIfNotExists(parts[0])
	for _, n := range parts[1:] {
		if err != nil {
			break
		}
		b, err = b.CreateBucketIfNotExists(n)
	}
	return err
}

func deleteBucket(tx *bolt.Tx, name []byte) error {
	parts := bytes.Split(name, boltSep)
	last := len(parts) - 1
	var err error
	if last == 0 {
		err = tx.DeleteBucket(parts[0])
	} else {
		parent, perr := bucketOf(tx, bytes.Join(parts[:last], boltSep))
		if perr != nil {
			return fmt.Errorf("bucket %s does not exist: %w", name, database.ErrNotFound)
		}
		err = parent.DeleteBucket(parts[last])
	}
	if errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("bucket %s does not exist: %w", name, database.ErrNotFound)
	}
	return err
}

func (s *boltStore) CreateTable(bucket []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return createBucket(tx, bucket) })
}

func (s *boltStore) DeleteTable(bucket []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return deleteBucket(tx, bucket) })
}

func (s *boltStore) Get(bucket, key []byte) (ret []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b, err := bucketOf(tx, bucket)
		if err != nil {
			return err
		}
		v := b.Get(key)
		if v == nil {
			return database.ErrNotFound
		}
		ret = bytes.Clone(v)
		return nil
	})
	return ret, err
}

func (s *boltStore) Set(bucket, key, value []byte) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		b, err := bucketOf(tx, bucket)
		if err != nil {
			return err
		}
		return b.Put(key, value)
	})
}

func (s *boltStore) Del(bucket, key []byte) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		b, err := bucketOf(tx, bucket)
		if err != nil {
			return err
		}
		return b.Delete(key)
	})
}

func (s *boltStore) List(bucket []byte) ([]*database.Entry, error) {
	var entries []*database.Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucketOf(tx, bucket)
		if err != nil {
			return fmt.Errorf("list %s: %w", bucket, err)
		}
		return b.ForEach(func(k, v []byte) error {
			entries = append(entries, &database.Entry{Bucket: bucket, Key: bytes.Clone(k), Value: bytes.Clone(v)})
			return nil
		})
	})
	return entries, err
}

func cmpAndSwap(b *bolt.Bucket, key, oldValue, newValue []byte) ([]byte, bool, error) {
	current := b.Get(key)
	if !bytes.Equal(current, oldValue) {
		return bytes.Clone(current), false, nil
	}
	if err := b.Put(key, newValue); err != nil {
		return nil, false, err
	}
	return newValue, true, nil
}

// CmpAndSwap is what step-ca's UseToken calls: the swap from "absent" to
// the token is the one-time check. Batch may run fn more than once (only
// after a failed batch, whose effects were rolled back), so the results are
// those of the run that committed.
func (s *boltStore) CmpAndSwap(bucket, key, oldValue, newValue []byte) ([]byte, bool, error) {
	var (
		val     []byte
		swapped bool
	)
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b, err := bucketOf(tx, bucket)
		if err != nil {
			return err
		}
		val, swapped, err = cmpAndSwap(b, key, oldValue, newValue)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return val, swapped, nil
}

func (s *boltStore) Update(tx *database.Tx) error {
	return s.db.Batch(func(btx *bolt.Tx) error {
		for _, q := range tx.Operations {
			switch q.Cmd {
			case database.CreateTable:
				if err := createBucket(btx, q.Bucket); err != nil {
					return err
				}
				continue
			case database.DeleteTable:
				if err := deleteBucket(btx, q.Bucket); err != nil {
					return err
				}
				continue
			}
			b, err := bucketOf(btx, q.Bucket)
			if err != nil {
				return fmt.Errorf("%s: %w", q.Bucket, err)
			}
			switch q.Cmd {
			case database.Get:
				v := b.Get(q.Key)
				if v == nil {
					return database.ErrNotFound
				}
				q.Result = bytes.Clone(v)
			case database.Set:
				if err := b.Put(q.Key, q.Value); err != nil {
					return err
				}
			case database.Delete:
				if err := b.Delete(q.Key); err != nil {
					return err
				}
			case database.CmpAndSwap:
				if q.Result, q.Swapped, err = cmpAndSwap(b, q.Key, q.CmpValue, q.Value); err != nil {
					return fmt.Errorf("CmpAndSwap %s/%s: %w", q.Bucket, q.Key, err)
				}
			default:
				return fmt.Errorf("operation %q is not supported", q.Cmd)
			}
		}
		return nil
	})
}

// stepTables are the buckets step-ca's db.New creates.
var stepTables = []string{
	"revoked_x509_certs", "x509_certs", "used_ott", "ssh_certs", "ssh_hosts",
	"ssh_host_principals", "ssh_users", "revoked_ssh_certs", "x509_certs_data", "x509_crl",
}

var _ database.DB = (*boltStore)(nil)
