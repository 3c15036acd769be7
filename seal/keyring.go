package seal

import (
	"context"
	"fmt"
)

// Keyring is a store's policy for its private-key columns, the same for
// every store (sqlite, postgres): with a Sealer every key is sealed; without
// one keys are stored as they are, which OpenKeyring allows only while the
// store holds no data key. Neither method puts key material into an error.
type Keyring struct {
	// Sealer seals and opens; nil when the store has no master key.
	Sealer *Sealer
	// Hint says how to provide the master key, for MissingKeyError.
	Hint string
}

// OpenKeyring makes a store's Keyring: with a master key (kek) it builds the
// Sealer (creating the store's data key if it has none; of instances starting
// at once, one creates it); without one it checks that the store holds no
// data key, so a store that may hold sealed values is never used without its
// master key.
func OpenKeyring(ctx context.Context, store DEKStore, kek KeyWrapper, previous []KeyWrapper, hint string) (Keyring, error) {
	k := Keyring{Hint: hint}
	if kek == nil {
		return k, CheckNoDataKeys(ctx, store, hint)
	}
	s, err := New(ctx, Config{Store: store, KEK: kek, Previous: previous})
	if err != nil {
		return k, err
	}
	k.Sealer = s
	return k, nil
}

// Seal returns the stored form of a PEM private key, bound to its row by
// aad; nil or empty input is stored as NULL (nil).
func (k Keyring) Seal(pemKey, aad []byte) ([]byte, error) {
	if len(pemKey) == 0 {
		return nil, nil
	}
	if k.Sealer == nil {
		return pemKey, nil
	}
	b, err := k.Sealer.Seal(pemKey, aad)
	if err != nil {
		return nil, fmt.Errorf("seal private key: %w", err)
	}
	return b, nil
}

// Open reverses Seal; NULL (nil) gives nil. A plaintext value (written
// before the store had a master key) is returned as it is, and is sealed on
// its next write. A sealed value without a Sealer is a *MissingKeyError,
// never returned as it is.
func (k Keyring) Open(stored, aad []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, nil
	}
	if !IsSealed(stored) {
		return stored, nil
	}
	if k.Sealer == nil {
		return nil, &MissingKeyError{Hint: k.Hint}
	}
	b, err := k.Sealer.Open(stored, aad)
	if err != nil {
		return nil, fmt.Errorf("open sealed private key: %w", err)
	}
	return b, nil
}

// The additional data that binds each of certfleet's private-key columns to
// its row, the same in every store, so that a value copied into another row
// (or moved between stores) opens only where it belongs.

// AccountKeyAAD binds an account key to its account.
func AccountKeyAAD(ca, name string) []byte { return AAD("accounts.key_pem", ca, name) }

// PendingAccountKeyAAD binds the new key of an account key rollover to its
// account, and to its column, so that it cannot be swapped with the
// account key.
func PendingAccountKeyAAD(ca, name string) []byte { return AAD("accounts.pending_key", ca, name) }

// PendingKeyAAD binds a pending order's key to its job and order.
func PendingKeyAAD(spec, keyType, orderURL string) []byte {
	return AAD("jobs.pending_key", spec, keyType, orderURL)
}

// IssuanceKeyAAD binds an issued certificate's key to its certificate.
func IssuanceKeyAAD(spec, keyType, fingerprint string) []byte {
	return AAD("issuances.key_pem", spec, keyType, fingerprint)
}

// SecretAAD binds a stored secret (a TSIG or EAB key, a DNS API password) to
// its name.
func SecretAAD(name string) []byte { return AAD("secrets.value", name) }

// SealSecret seals a stored secret's value, bound to its name. Unlike Seal
// it never stores plaintext: without a Sealer it returns ErrNoSealer.
func (k Keyring) SealSecret(name string, value []byte) ([]byte, error) {
	if k.Sealer == nil {
		return nil, ErrNoSealer
	}
	b, err := k.Sealer.Seal(value, SecretAAD(name))
	if err != nil {
		return nil, fmt.Errorf("seal secret %q: %w", name, err)
	}
	return b, nil
}

// OpenSecret reverses SealSecret. A value that is not sealed is refused
// (ErrNotSealed), not trusted: nothing certfleet writes puts one there.
func (k Keyring) OpenSecret(name string, stored []byte) ([]byte, error) {
	if !IsSealed(stored) {
		return nil, fmt.Errorf("secret %q: %w", name, ErrNotSealed)
	}
	if k.Sealer == nil {
		return nil, &MissingKeyError{Hint: k.Hint}
	}
	b, err := k.Sealer.Open(stored, SecretAAD(name))
	if err != nil {
		return nil, fmt.Errorf("open secret %q: %w", name, err)
	}
	return b, nil
}
