package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
	"github.com/certfleet/certfleet/storetest"
)

func openSealed(t testing.TB, dsn string, kek seal.KeyWrapper, prev ...seal.KeyWrapper) (*postgres.Store, error) {
	t.Helper()
	s := postgres.New(dsn)
	s.KEK, s.PreviousKEKs, s.MasterKeyHint = kek, prev, storetest.MasterKeyHint
	if err := s.Open(t.Context()); err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}

// newSealedTestStore opens a store with a new master key on a new schema,
// closed when t ends.
func newSealedTestStore(t *testing.T) *postgres.Store {
	t.Helper()
	s, err := openSealed(t, pgtest.DSN(t), sealtest.NewKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSeal runs the contract of sealing at rest on PostgreSQL.
func TestSeal(t *testing.T) {
	storetest.RunSeal(t, func(t *testing.T) storetest.SealOpener {
		dsn := pgtest.DSN(t)
		return func(t *testing.T, kek seal.KeyWrapper, prev ...seal.KeyWrapper) (storetest.SealedStore, error) {
			s, err := openSealed(t, dsn, kek, prev...)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	})
}

// TestDataKeyCreateRace: instances starting at once on an empty database
// with the same master key end up with one data key, and each reads what
// the others sealed.
func TestDataKeyCreateRace(t *testing.T) {
	dsn := pgtest.DSN(t)
	mustOpen(t, dsn).Close() // migrate first: the race under test is the data key's
	kek := sealtest.NewKEK(t)
	const n = 6
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = openSealed(t, dsn, kek)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	var rows int
	if err := rawConn(t, dsn).QueryRow(t.Context(), `SELECT count(*) FROM data_keys`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("data_keys has %d rows (%v), want 1", rows, err)
	}
	ctx := t.Context()
	if _, err := stores[0].CreateAccount(ctx, certfleet.Account{CA: "ca", Name: "a", KeyPEM: storetest.TestKeyPEM, URL: "u"}); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if a, err := s.Account(ctx, "ca", "a"); err != nil || !bytes.Equal(a.KeyPEM, storetest.TestKeyPEM) {
			t.Errorf("store %d reads the key sealed by store 0: %v", i, err)
		}
	}
}

// TestRotateUnderLoad: one instance writes and reads keys without pause
// while another rotates the master key; the writer never fails, and
// afterwards every key opens with the new master key alone.
func TestRotateUnderLoad(t *testing.T) {
	dsn := pgtest.DSN(t)
	oldK, newK := sealtest.NewKEK(t), sealtest.NewKEK(t)
	busy, err := openSealed(t, dsn, oldK)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stop := make(chan struct{})
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		werr   error
		writes int
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := "acct-" + string(rune('a'+w)) + "-" + itoa(i)
				_, err := busy.CreateAccount(ctx, certfleet.Account{CA: "ca", Name: name, KeyPEM: storetest.TestKeyPEM, URL: name})
				if err == nil {
					var a certfleet.Account
					a, err = busy.Account(ctx, "ca", name)
					if err == nil && !bytes.Equal(a.KeyPEM, storetest.TestKeyPEM) {
						err = errors.New("key read back differs")
					}
				}
				mu.Lock()
				if err != nil && werr == nil {
					werr = err
				}
				writes++
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	rot, err := openSealed(t, dsn, newK, oldK)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := rot.Sealer().Rotate(ctx); err != nil || len(res.Rewrapped) != 1 {
		t.Fatalf("rotate: %+v, %v", res, err)
	}
	// Keep the load on a while after the rotation.
	mu.Lock()
	target := writes + 100
	mu.Unlock()
	for {
		mu.Lock()
		n, failed := writes, werr != nil
		mu.Unlock()
		if n > target || failed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatalf("the running instance failed during the rotation: %v", werr)
	}
	after, err := openSealed(t, dsn, newK)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	rows, err := rawConn(t, dsn).Query(ctx, `SELECT name FROM accounts`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if len(names) < 100 {
		t.Fatalf("%d accounts written", len(names))
	}
	for _, n := range names {
		if a, err := after.Account(ctx, "ca", n); err != nil || !bytes.Equal(a.KeyPEM, storetest.TestKeyPEM) {
			t.Fatalf("account %s with the new key alone: %v", n, err)
		}
	}
}

func itoa(i int) string { return fmt.Sprint(i) }
