package sqlite_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
	"github.com/certfleet/certfleet/sqlite"
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

func openSealed(t testing.TB, path string, kek seal.KeyWrapper, prev ...seal.KeyWrapper) (*sqlite.Store, error) {
	t.Helper()
	s := sqlite.New(path)
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
		s, err := openSealed(t, filepath.Join(t.TempDir(), "certfleet.db"), newKEK(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

var testKeyPEM = []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtestkeymaterial\n-----END PRIVATE KEY-----\n")

func TestKeysSealedAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	kek := newKEK(t)
	s, err := openSealed(t, path, kek)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, name := range []string{"a", "b"} {
		if _, err := s.CreateAccount(ctx, certfleet.Account{CA: "ca", Name: name, KeyPEM: testKeyPEM, URL: "https://ca/acct/" + name}); err != nil {
			t.Fatal(err)
		}
	}
	db := rawDB(t, path)
	var raw []byte
	if err := db.QueryRow(`SELECT key_pem FROM accounts WHERE name = 'a'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !seal.IsSealed(raw) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatalf("account key stored unsealed: %q", raw[:20])
	}
	a, err := s.Account(ctx, "ca", "a")
	if err != nil || !bytes.Equal(a.KeyPEM, testKeyPEM) {
		t.Fatalf("read back sealed account key: %v, equal %v", err, bytes.Equal(a.KeyPEM, testKeyPEM))
	}
	// A sealed value is bound to its row: copied to another row it does
	// not open.
	if _, err := db.Exec(`UPDATE accounts SET key_pem = ? WHERE name = 'b'`, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, "ca", "b"); !errors.Is(err, seal.ErrAuthFailed) {
		t.Fatalf("key moved to another row: got %v, want ErrAuthFailed", err)
	}
	s.Close()

	// Without the master key: refused at Open, with the hint.
	_, err = openSealed(t, path, nil)
	var mk *seal.MissingKeyError
	if !errors.As(err, &mk) || mk.Hint != "file: test.key" {
		t.Fatalf("open sealed store without master key: got %v, want *seal.MissingKeyError", err)
	}
	// With another master key: refused, naming the right one.
	_, err = openSealed(t, path, newKEK(t))
	if !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("open with another master key: got %v, want ErrWrongMasterKey", err)
	}
}

// TestPlaintextUpgrade: a store written without a master key stays readable
// once it gets one, and a key is sealed on its next write.
func TestPlaintextUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	s := mustOpen(t, path)
	ctx := t.Context()
	acct := certfleet.Account{CA: "ca", Name: "a", KeyPEM: testKeyPEM, URL: "https://ca/acct/1"}
	if _, err := s.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2, err := openSealed(t, path, newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := s2.Account(ctx, "ca", "a")
	if err != nil || !bytes.Equal(a.KeyPEM, testKeyPEM) {
		t.Fatalf("read legacy plaintext key: %v", err)
	}
	next := acct
	next.URL = "https://ca/acct/2"
	if _, err := s2.ReplaceAccount(ctx, acct, next); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := rawDB(t, path).QueryRow(`SELECT key_pem FROM accounts WHERE name = 'a'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !seal.IsSealed(raw) {
		t.Fatal("key rewritten in plaintext after the store got a master key")
	}
	s2.Close()
	// The store now holds a data key: opening it without one is refused.
	if _, err := openSealed(t, path, nil); !errors.Is(err, seal.ErrNoMasterKey) {
		t.Fatalf("open without master key after sealing: got %v", err)
	}
}

// TestRotateMasterKey: after a rotation the store opens with the new key
// alone, and no longer with the old one.
func TestRotateMasterKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	oldK, newK := newKEK(t), newKEK(t)
	s, err := openSealed(t, path, oldK)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.CreateAccount(ctx, certfleet.Account{CA: "ca", Name: "a", KeyPEM: testKeyPEM, URL: "u"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r, err := openSealed(t, path, newK, oldK)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Sealer().Rotate(ctx)
	if err != nil || len(res.Rewrapped) != 1 || res.KEKID != newK.ID() {
		t.Fatalf("rotate: %+v, %v", res, err)
	}
	r.Close()
	s3, err := openSealed(t, path, newK)
	if err != nil {
		t.Fatalf("open with the new key only: %v", err)
	}
	if a, err := s3.Account(ctx, "ca", "a"); err != nil || !bytes.Equal(a.KeyPEM, testKeyPEM) {
		t.Fatalf("read after rotation: %v", err)
	}
	s3.Close()
	if _, err := openSealed(t, path, oldK); !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("open with the old key after rotation: got %v, want ErrWrongMasterKey", err)
	}
}

// TestSealedValueWithoutSealer: a sealed value met by a store without a
// master key (its data key row gone) is an error, never returned as it is.
func TestSealedValueWithoutSealer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	s, err := openSealed(t, path, newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccount(t.Context(), certfleet.Account{CA: "ca", Name: "a", KeyPEM: testKeyPEM, URL: "u"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := rawDB(t, path).Exec(`DELETE FROM data_keys`); err != nil {
		t.Fatal(err)
	}
	s2, err := openSealed(t, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s2.Account(t.Context(), "ca", "a")
	var mk *seal.MissingKeyError
	if !errors.As(err, &mk) || len(a.KeyPEM) != 0 {
		t.Fatalf("sealed key without a master key: got %v (key of %d bytes), want *seal.MissingKeyError", err, len(a.KeyPEM))
	}
}

func TestSecrets(t *testing.T) {
	storetest.RunSecrets(t, func(t *testing.T) certfleet.SecretStore {
		s, err := openSealed(t, filepath.Join(t.TempDir(), "certfleet.db"), newKEK(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestSecretsSealedAtRest: a stored secret is sealed in the file, bound to
// its name, and a store without a master key refuses to keep one.
func TestSecretsSealedAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	s, err := openSealed(t, path, newKEK(t))
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
	db := rawDB(t, path)
	var raw []byte
	if err := db.QueryRow(`SELECT value FROM secrets WHERE name = 'a'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !seal.IsSealed(raw) || bytes.Contains(raw, value) {
		t.Fatal("secret stored unsealed")
	}
	if _, err := db.Exec(`UPDATE secrets SET value = ? WHERE name = 'b'`, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secret(ctx, "b"); !errors.Is(err, seal.ErrAuthFailed) {
		t.Fatalf("secret moved to another row: got %v, want ErrAuthFailed", err)
	}
	if _, err := db.Exec(`UPDATE secrets SET value = ? WHERE name = 'b'`, value); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secret(ctx, "b"); certfleet.ErrorCode(err) != certfleet.EINTERNAL {
		t.Fatalf("plaintext in the secrets table: got %v, want a refusal", err)
	}

	plain := mustOpen(t, filepath.Join(t.TempDir(), "plain.db"))
	err = plain.PutSecret(ctx, "x", value)
	if certfleet.ErrorCode(err) != certfleet.EINVALID || !strings.Contains(err.Error(), "master_key_file") {
		t.Fatalf("PutSecret without a master key: %v, want EINVALID naming master_key_file", err)
	}
}
