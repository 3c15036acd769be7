package seal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
)

func TestKeyring(t *testing.T) {
	ctx := t.Context()
	pemKey := []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n")
	aad := seal.IssuanceKeyAAD("www", "ecdsa-p256", "ab12")

	// No master key and no data key: keys stay as they are.
	store := new(sealtest.MemDEKStore)
	plain, err := seal.OpenKeyring(ctx, store, nil, nil, "set master_key_file")
	if err != nil || plain.Sealer != nil {
		t.Fatalf("OpenKeyring without a key: %v, sealer %v", err, plain.Sealer)
	}
	if got, err := plain.Seal(pemKey, aad); err != nil || !bytes.Equal(got, pemKey) {
		t.Fatalf("Seal without a key = %q, %v; want the key as it is", got, err)
	}
	if got, err := plain.Seal(nil, aad); err != nil || got != nil {
		t.Fatalf("Seal(nil) = %q, %v; want NULL", got, err)
	}

	// With a master key: sealed, bound to the row, and plaintext still read.
	kek, err := seal.NewLocalKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.OpenKeyring(ctx, store, kek, nil, "set master_key_file")
	if err != nil || keys.Sealer == nil {
		t.Fatalf("OpenKeyring with a key: %v", err)
	}
	sealed, err := keys.Seal(pemKey, aad)
	if err != nil || !seal.IsSealed(sealed) || bytes.Contains(sealed, []byte("PRIVATE KEY")) {
		t.Fatalf("Seal = %q, %v; want a sealed value", sealed, err)
	}
	if got, err := keys.Open(sealed, aad); err != nil || !bytes.Equal(got, pemKey) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := keys.Open(sealed, seal.IssuanceKeyAAD("other", "ecdsa-p256", "ab12")); err == nil {
		t.Fatal("a value moved to another row opened")
	}
	if got, err := keys.Open(pemKey, aad); err != nil || !bytes.Equal(got, pemKey) {
		t.Fatalf("Open(plaintext) = %q, %v; want it as it is (sealed on its next write)", got, err)
	}

	// The store now holds a data key: without the master key it refuses, and
	// a sealed value never comes back as it is.
	if _, err := seal.OpenKeyring(ctx, store, nil, nil, "set master_key_file"); !errors.Is(err, seal.ErrNoMasterKey) {
		t.Fatalf("OpenKeyring without a key over sealed data: %v, want ErrNoMasterKey", err)
	}
	var missing *seal.MissingKeyError
	if _, err := plain.Open(sealed, aad); !errors.As(err, &missing) || missing.Hint != "set master_key_file" {
		t.Fatalf("Open without a Sealer: %v, want a MissingKeyError with the hint", err)
	}
}
