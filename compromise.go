package certfleet

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// KeyID identifies a key pair by its public key: the hex SHA-256 of the
// DER-encoded SubjectPublicKeyInfo (RFC 5280 §4.1.2.7). It is the same for
// every certificate made from the key, whatever its names, serial or CA, so
// it finds every certificate a compromised key is in (reuse_key lineages
// keep one key across renewals). `certfleet status` shows it; operators may
// give an unambiguous prefix of at least MinKeyIDPrefix hex digits.
// Ours: RFC 8555 defines no key identifier; this is the SPKI hash
// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`
// prints, so it can be checked by hand.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key ID: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// MinKeyIDPrefix is the shortest key ID prefix accepted where a key is named:
// 8 hex digits (32 bits) make an accidental match among a fleet's keys
// unlikely, and an ambiguous prefix is refused anyway.
const MinKeyIDPrefix = 8

// ValidKeyIDPrefix checks that s could name a key: MinKeyIDPrefix to 64
// lower-case hex digits.
func ValidKeyIDPrefix(s string) error {
	if len(s) < MinKeyIDPrefix || len(s) > 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return fmt.Errorf("key ID %q: give %d to 64 lower-case hex digits (the KEY ID column of certfleet status)", s, MinKeyIDPrefix)
	}
	return nil
}

// KeyID returns the key ID of the issuance's certificate key.
func (i Issuance) KeyID() (string, error) {
	leaf, err := i.Leaf()
	if err != nil {
		return "", err
	}
	return KeyID(leaf.PublicKey)
}

// BlockedKey is a key declared compromised (certfleet compromise): no
// certificate may be ordered with it again, even by a spec with reuse_key
// or a CSR that carries it.
type BlockedKey struct {
	KeyID string `json:"key_id"`
	// Reason says why ("key compromise"); Actor who blocked it (see
	// Event.Actor).
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
	BlockedAt time.Time `json:"blocked_at"`
}

// LogValue keeps log lines short.
func (b BlockedKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key_id", b.KeyID), slog.String("actor", b.Actor))
}

// KeyBlocklist keeps the keys that must never be used again. Safe for
// concurrent use; durable when a method returns.
type KeyBlocklist interface {
	// BlockKey adds b (its KeyID must be a full 64-digit key ID).
	// Blocking a key again is not an error and keeps the first record.
	BlockKey(ctx context.Context, b BlockedKey) error
	// KeyBlocked reports whether the key with this full ID is blocked. It
	// is asked for every job the scheduler works on: one indexed lookup.
	KeyBlocked(ctx context.Context, keyID string) (bool, error)
	// BlockedKeys lists the blocked keys, oldest first.
	BlockedKeys(ctx context.Context) ([]BlockedKey, error)
}
