package storetest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
	"github.com/certfleet/certfleet/sqlstore"
)

// SealedStore is a store that seals the private keys and secrets it keeps
// with a master key (package seal), and shows its database seam for the
// checks RunSeal makes below the interface (what the tables hold).
type SealedStore interface {
	certfleet.Store
	certfleet.AccountReplacer
	seal.DEKStore
	Sealer() *seal.Sealer
	DB() sqlstore.DB
}

// MasterKeyHint is the hint a SealOpener gives its stores (MasterKeyHint
// of sqlite.Store and postgres.Store): RunSeal checks that a store refused
// for want of a master key names it.
const MasterKeyHint = "file: test.key"

// SealOpener opens the same database at each call, with the master key kek
// (nil: none) and the previous master keys prev, MasterKeyHint as the hint,
// and returns what the store's Open returned. The store is closed when t
// ends, or earlier by the test.
type SealOpener func(t *testing.T, kek seal.KeyWrapper, prev ...seal.KeyWrapper) (SealedStore, error)

// RunSeal runs the contract of sealing at rest: the whole store contract,
// the data key store and the secrets with a master key; account keys and
// secrets sealed in the database and bound to their row; a store refused
// without its master key or with another one; a plaintext store upgraded
// when it gets a master key; master key rotation; a sealed value without
// its data key. newDatabase returns an opener of a new, empty database.
func RunSeal(t *testing.T, newDatabase func(t *testing.T) SealOpener) {
	sealed := func(t *testing.T) SealedStore {
		t.Helper()
		return mustOpenSealed(t, newDatabase(t), sealtest.NewKEK(t))
	}
	t.Run("DEKStore", func(t *testing.T) {
		sealtest.RunDEKStore(t, func(t *testing.T) seal.DEKStore { return mustOpenSealed(t, newDatabase(t), nil) })
	})
	t.Run("Store", func(t *testing.T) {
		Run(t, func(t *testing.T) certfleet.Store { return sealed(t) })
	})
	t.Run("Secrets", func(t *testing.T) {
		RunSecrets(t, func(t *testing.T) certfleet.SecretStore { return sealed(t) })
	})
	t.Run("KeysSealedAtRest", func(t *testing.T) { testKeysSealedAtRest(t, newDatabase(t)) })
	t.Run("PlaintextUpgrade", func(t *testing.T) { testPlaintextUpgrade(t, newDatabase(t)) })
	t.Run("RotateMasterKey", func(t *testing.T) { testRotateMasterKey(t, newDatabase(t)) })
	t.Run("SealedValueWithoutSealer", func(t *testing.T) { testSealedValueWithoutSealer(t, newDatabase(t)) })
	t.Run("SecretsSealedAtRest", func(t *testing.T) {
		testSecretsSealedAtRest(t, newDatabase(t), mustOpenSealed(t, newDatabase(t), nil))
	})
}

// TestKeyPEM is an account key as the stores keep it: opaque PEM.
var TestKeyPEM = []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtestkeymaterial\n-----END PRIVATE KEY-----\n")

func mustOpenSealed(t *testing.T, open SealOpener, kek seal.KeyWrapper, prev ...seal.KeyWrapper) SealedStore {
	t.Helper()
	s, err := open(t, kek, prev...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// rawValue reads one column of one row, below the store: what the
// database holds.
func rawValue(t *testing.T, s SealedStore, query string) []byte {
	t.Helper()
	var raw []byte
	if err := s.DB().Read(t.Context()).QueryRow(sqlstore.SQL(query)).Scan(&raw); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return raw
}

// rawExec runs one statement below the store.
func rawExec(t *testing.T, s SealedStore, statement string, args ...any) {
	t.Helper()
	err := s.DB().Write(t.Context(), func(tx sqlstore.Tx) error {
		_, err := tx.Exec(sqlstore.SQL(statement), args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

// mustCreateSealedAccount creates account ca/name with TestKeyPEM.
func mustCreateSealedAccount(t *testing.T, s certfleet.Store, name, url string) certfleet.Account {
	t.Helper()
	a := certfleet.Account{CA: "ca", Name: name, KeyPEM: TestKeyPEM, URL: url}
	if _, err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

// wantAccountKey checks that s reads account ca/name back with TestKeyPEM.
func wantAccountKey(t *testing.T, s certfleet.Store, name, when string) {
	t.Helper()
	a, err := s.Account(t.Context(), "ca", name)
	if err != nil || !bytes.Equal(a.KeyPEM, TestKeyPEM) {
		t.Fatalf("%s: read account %s: %v, key equal %v", when, name, err, bytes.Equal(a.KeyPEM, TestKeyPEM))
	}
}

func testKeysSealedAtRest(t *testing.T, open SealOpener) {
	kek := sealtest.NewKEK(t)
	s := mustOpenSealed(t, open, kek)
	for _, name := range []string{"a", "b"} {
		mustCreateSealedAccount(t, s, name, "https://ca/acct/"+name)
	}
	raw := rawValue(t, s, `SELECT key_pem FROM accounts WHERE name = 'a'`)
	if !seal.IsSealed(raw) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatalf("account key stored unsealed: %q", raw[:min(20, len(raw))])
	}
	wantAccountKey(t, s, "a", "read back sealed account key")
	// A sealed value is bound to its row: copied to another row it does
	// not open.
	rawExec(t, s, `UPDATE accounts SET key_pem = $1 WHERE name = 'b'`, raw)
	if _, err := s.Account(t.Context(), "ca", "b"); !errors.Is(err, seal.ErrAuthFailed) {
		t.Fatalf("key moved to another row: got %v, want ErrAuthFailed", err)
	}
	s.Close()

	// Without the master key: refused at Open, with the hint.
	_, err := open(t, nil)
	var mk *seal.MissingKeyError
	if !errors.As(err, &mk) || mk.Hint != MasterKeyHint {
		t.Fatalf("open sealed store without master key: got %v, want *seal.MissingKeyError with hint %q", err, MasterKeyHint)
	}
	// With another master key: refused, naming the right one.
	if _, err := open(t, sealtest.NewKEK(t)); !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("open with another master key: got %v, want ErrWrongMasterKey", err)
	}
	rotate(t, open, kek)
}

// rotate rotates the database's master key from old to a new one and
// checks that the store then opens with the new key alone, reads account
// "a" with it, and no longer opens with the old one.
func rotate(t *testing.T, open SealOpener, old seal.KeyWrapper) {
	t.Helper()
	newK := sealtest.NewKEK(t)
	r := mustOpenSealed(t, open, newK, old)
	res, err := r.Sealer().Rotate(t.Context())
	if err != nil || len(res.Rewrapped) != 1 || res.KEKID != newK.ID() {
		t.Fatalf("rotate: %+v, %v; want one data key rewrapped under %s", res, err, newK.ID())
	}
	r.Close()
	s, err := open(t, newK)
	if err != nil {
		t.Fatalf("open with the new key only: %v", err)
	}
	wantAccountKey(t, s, "a", "after rotation")
	s.Close()
	if _, err := open(t, old); !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("open with the old key after rotation: got %v, want ErrWrongMasterKey", err)
	}
}

// testPlaintextUpgrade: a store written without a master key stays
// readable once it gets one, and a key is sealed on its next write.
func testPlaintextUpgrade(t *testing.T, open SealOpener) {
	s := mustOpenSealed(t, open, nil)
	acct := mustCreateSealedAccount(t, s, "a", "https://ca/acct/1")
	s.Close()

	s2 := mustOpenSealed(t, open, sealtest.NewKEK(t))
	wantAccountKey(t, s2, "a", "read legacy plaintext key")
	next := acct
	next.URL = "https://ca/acct/2"
	if _, err := s2.ReplaceAccount(t.Context(), acct, next); err != nil {
		t.Fatal(err)
	}
	if raw := rawValue(t, s2, `SELECT key_pem FROM accounts WHERE name = 'a'`); !seal.IsSealed(raw) {
		t.Fatal("key rewritten in plaintext after the store got a master key")
	}
	s2.Close()
	// The store now holds a data key: opening it without one is refused.
	if _, err := open(t, nil); !errors.Is(err, seal.ErrNoMasterKey) {
		t.Fatalf("open without master key after sealing: got %v", err)
	}
}

// testRotateMasterKey: after a rotation the store opens with the new key
// alone, and no longer with the old one.
func testRotateMasterKey(t *testing.T, open SealOpener) {
	oldK := sealtest.NewKEK(t)
	s := mustOpenSealed(t, open, oldK)
	mustCreateSealedAccount(t, s, "a", "u")
	s.Close()
	rotate(t, open, oldK)
}

// testSealedValueWithoutSealer: a sealed value met by a store without a
// master key (its data key row gone) is an error, never returned as it is.
func testSealedValueWithoutSealer(t *testing.T, open SealOpener) {
	s := mustOpenSealed(t, open, sealtest.NewKEK(t))
	mustCreateSealedAccount(t, s, "a", "u")
	rawExec(t, s, `DELETE FROM data_keys`)
	s.Close()
	s2 := mustOpenSealed(t, open, nil)
	a, err := s2.Account(t.Context(), "ca", "a")
	var mk *seal.MissingKeyError
	if !errors.As(err, &mk) || len(a.KeyPEM) != 0 {
		t.Fatalf("sealed key without a master key: got %v (key of %d bytes), want *seal.MissingKeyError", err, len(a.KeyPEM))
	}
}

// testSecretsSealedAtRest: a stored secret is sealed in the database, bound
// to its name, plaintext in its place is refused, and a store without a
// master key (plain) refuses to keep one.
func testSecretsSealedAtRest(t *testing.T, open SealOpener, plain SealedStore) {
	s := mustOpenSealed(t, open, sealtest.NewKEK(t))
	ctx := t.Context()
	value := []byte("dG9wLXNlY3JldC10c2lnLWtleS12YWx1ZQ==")
	for _, n := range []string{"a", "b"} {
		if err := s.PutSecret(ctx, n, value); err != nil {
			t.Fatal(err)
		}
	}
	raw := rawValue(t, s, `SELECT value FROM secrets WHERE name = 'a'`)
	if !seal.IsSealed(raw) || bytes.Contains(raw, value) {
		t.Fatal("secret stored unsealed")
	}
	rawExec(t, s, `UPDATE secrets SET value = $1 WHERE name = 'b'`, raw)
	if _, err := s.Secret(ctx, "b"); !errors.Is(err, seal.ErrAuthFailed) {
		t.Fatalf("secret moved to another row: got %v, want ErrAuthFailed", err)
	}
	rawExec(t, s, `UPDATE secrets SET value = $1 WHERE name = 'b'`, value)
	if _, err := s.Secret(ctx, "b"); certfleet.ErrorCode(err) != certfleet.EINTERNAL {
		t.Fatalf("plaintext in the secrets table: got %v, want a refusal", err)
	}

	err := plain.PutSecret(ctx, "x", value)
	if certfleet.ErrorCode(err) != certfleet.EINVALID || !strings.Contains(err.Error(), "master_key_file") {
		t.Fatalf("PutSecret without a master key: %v, want EINVALID naming master_key_file", err)
	}
}
