package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
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

func newKEK(t testing.TB) *seal.LocalKey {
	t.Helper()
	key, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.NewLocalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openSealed(t testing.TB, dsn string, kek seal.KeyWrapper, prev ...seal.KeyWrapper) (*postgres.Store, error) {
	t.Helper()
	s := postgres.New(dsn)
	s.KEK, s.PreviousKEKs, s.MasterKeyHint = kek, prev, "file: test.key"
	if err := s.Open(t.Context()); err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}

func TestDEKStore(t *testing.T) {
	sealtest.RunDEKStore(t, func(t *testing.T) seal.DEKStore { return newTestStore(t) })
}

// TestStoreSealed runs the whole store contract with encryption on.
func TestStoreSealed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) certfleet.Store {
		s, err := openSealed(t, pgtest.DSN(t), newKEK(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestDataKeyCreateRace: instances starting at once on an empty database
// with the same master key end up with one data key, and each reads what
// the others sealed.
func TestDataKeyCreateRace(t *testing.T) {
	dsn := pgtest.DSN(t)
	mustOpen(t, dsn).Close() // migrate first: the race under test is the data key's
	kek := newKEK(t)
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
	if _, err := stores[0].CreateAccount(ctx, certfleet.Account{CA: "ca", Name: "a", KeyPEM: testKeyPEM, URL: "u"}); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if a, err := s.Account(ctx, "ca", "a"); err != nil || !bytes.Equal(a.KeyPEM, testKeyPEM) {
			t.Errorf("store %d reads the key sealed by store 0: %v", i, err)
		}
	}
}

var testKeyPEM = []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtestkeymaterial\n-----END PRIVATE KEY-----\n")

func TestKeysSealedAtRest(t *testing.T) {
	dsn := pgtest.DSN(t)
	kek := newKEK(t)
	s, err := openSealed(t, dsn, kek)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, name := range []string{"a", "b"} {
		if _, err := s.CreateAccount(ctx, certfleet.Account{CA: "ca", Name: name, KeyPEM: testKeyPEM, URL: "https://ca/acct/" + name}); err != nil {
			t.Fatal(err)
		}
	}
	db := rawConn(t, dsn)
	var raw []byte
	if err := db.QueryRow(ctx, `SELECT key_pem FROM accounts WHERE name = 'a'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !seal.IsSealed(raw) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("account key stored unsealed")
	}
	if _, err := db.Exec(ctx, `UPDATE accounts SET key_pem = $1 WHERE name = 'b'`, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, "ca", "b"); !errors.Is(err, seal.ErrAuthFailed) {
		t.Fatalf("key moved to another row: got %v, want ErrAuthFailed", err)
	}
	s.Close()

	_, err = openSealed(t, dsn, nil)
	var mk *seal.MissingKeyError
	if !errors.As(err, &mk) || mk.Hint != "file: test.key" {
		t.Fatalf("open sealed database without master key: got %v, want *seal.MissingKeyError", err)
	}
	if _, err := openSealed(t, dsn, newKEK(t)); !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("open with another master key: got %v, want ErrWrongMasterKey", err)
	}
	// Rotation: old and new key, then the new one alone.
	newK := newKEK(t)
	r, err := openSealed(t, dsn, newK, kek)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Sealer().Rotate(ctx); err != nil || len(res.Rewrapped) != 1 {
		t.Fatalf("rotate: %+v, %v", res, err)
	}
	r.Close()
	s2, err := openSealed(t, dsn, newK)
	if err != nil {
		t.Fatalf("open with the new key only: %v", err)
	}
	if a, err := s2.Account(ctx, "ca", "a"); err != nil || !bytes.Equal(a.KeyPEM, testKeyPEM) {
		t.Fatalf("read after rotation: %v", err)
	}
	if _, err := openSealed(t, dsn, kek); !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("open with the old key after rotation: got %v", err)
	}
}

// TestPlaintextUpgrade: keys written without a master key stay readable
// once the database gets one, and are sealed on their next write.
func TestPlaintextUpgrade(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := mustOpen(t, dsn)
	ctx := t.Context()
	acct := certfleet.Account{CA: "ca", Name: "a", KeyPEM: testKeyPEM, URL: "u1"}
	if _, err := s.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := openSealed(t, dsn, newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s2.Account(ctx, "ca", "a"); err != nil || !bytes.Equal(a.KeyPEM, testKeyPEM) {
		t.Fatalf("read legacy plaintext key: %v", err)
	}
	next := acct
	next.URL = "u2"
	if _, err := s2.ReplaceAccount(ctx, acct, next); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := rawConn(t, dsn).QueryRow(ctx, `SELECT key_pem FROM accounts WHERE name = 'a'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !seal.IsSealed(raw) {
		t.Fatal("key rewritten in plaintext after the database got a master key")
	}
}

// TestRotateUnderLoad: one instance writes and reads keys without pause
// while another rotates the master key; the writer never fails, and
// afterwards every key opens with the new master key alone.
func TestRotateUnderLoad(t *testing.T) {
	dsn := pgtest.DSN(t)
	oldK, newK := newKEK(t), newKEK(t)
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
				_, err := busy.CreateAccount(ctx, certfleet.Account{CA: "ca", Name: name, KeyPEM: testKeyPEM, URL: name})
				if err == nil {
					var a certfleet.Account
					a, err = busy.Account(ctx, "ca", name)
					if err == nil && !bytes.Equal(a.KeyPEM, testKeyPEM) {
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
		if a, err := after.Account(ctx, "ca", n); err != nil || !bytes.Equal(a.KeyPEM, testKeyPEM) {
			t.Fatalf("account %s with the new key alone: %v", n, err)
		}
	}
}

func itoa(i int) string { return fmt.Sprint(i) }

func TestSecrets(t *testing.T) {
	storetest.RunSecrets(t, func(t *testing.T) certfleet.SecretStore {
		s, err := openSealed(t, pgtest.DSN(t), newKEK(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestSecretsSealedAtRest: a stored secret is sealed in the database, bound
// to its name, and a database without a master key refuses to keep one.
func TestSecretsSealedAtRest(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := openSealed(t, dsn, newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	value := []byte("dG9wLXNlY3JldC10c2lnLWtleS12YWx1ZQ==")
	for _, n := range []string{"a", "b"} {
		if err := s.PutSecret(ctx, n, value); err != nil {
			t.Fatal(err)
		}
	}
	db := rawConn(t, dsn)
	var raw []byte
	if err := db.QueryRow(ctx, `SELECT value FROM secrets WHERE name = 'a'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !seal.IsSealed(raw) || bytes.Contains(raw, value) {
		t.Fatal("secret stored unsealed")
	}
	if _, err := db.Exec(ctx, `UPDATE secrets SET value = $1 WHERE name = 'b'`, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secret(ctx, "b"); !errors.Is(err, seal.ErrAuthFailed) {
		t.Fatalf("secret moved to another row: got %v, want ErrAuthFailed", err)
	}
	plain, err := openSealed(t, pgtest.DSN(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = plain.PutSecret(ctx, "x", value)
	if certfleet.ErrorCode(err) != certfleet.EINVALID || !strings.Contains(err.Error(), "master_key_file") {
		t.Fatalf("PutSecret without a master key: %v, want EINVALID naming master_key_file", err)
	}
}
