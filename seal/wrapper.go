package seal

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// KeyWrapper is a master key (KEK): it wraps and unwraps data keys. LocalKey
// is the implementation on a 32-byte key held by the process; a KMS-backed
// one calls the KMS in Wrap and Unwrap.
//
// Implementations must be safe for concurrent use. Wrap and Unwrap may do
// I/O and must honour ctx; they are called once per data key at start and at
// rotation, never per sealed value. Their errors must not contain the data
// key or the master key.
type KeyWrapper interface {
	// ID names the master key, stably and without revealing it (LocalKey:
	// "local:" and 16 hex digits of a hash of the key; a KMS key: its
	// ARN or resource name). It is stored next to each data key it wraps
	// and shown in errors.
	ID() string
	// Wrap encrypts and authenticates a data key.
	Wrap(ctx context.Context, dek []byte) ([]byte, error)
	// Unwrap reverses Wrap; it fails (with an error matching
	// ErrAuthFailed for LocalKey) if wrapped was altered or wrapped by
	// another key.
	Unwrap(ctx context.Context, wrapped []byte) ([]byte, error)
}

// MasterKeySize is the size of a local master key: 32 bytes (AES-256).
const MasterKeySize = 32

// wrapFormatV1 is the first byte of a data key wrapped by a LocalKey:
//
//	version 1 byte  0x01
//	nonce   12 bytes, random
//	sealed  AES-256-GCM of the data key under the master key, and its tag
//
// with additional data wrapAADPrefix followed by the master key's ID.
const wrapFormatV1 = 0x01

const wrapAADPrefix = "certfleet seal: data key wrapped by "

// LocalKey is a KeyWrapper on a 32-byte master key held in memory, read
// from a file (LoadMasterKeyFile) or from a value the caller got elsewhere,
// e.g. an environment variable (LocalKeyFromText). Create it with one of
// those or NewLocalKey. It never prints its key: %v, %+v, %#v and slog show
// its ID only.
type LocalKey struct {
	id   string
	aead cipher.AEAD

	// Rand is the source of wrapping nonces. Default crypto/rand.Reader;
	// set it only in known-answer tests (it is then not safe for
	// concurrent use unless Rand is).
	Rand io.Reader
}

var _ KeyWrapper = (*LocalKey)(nil)

// NewLocalKey returns a LocalKey on key, which must be MasterKeySize bytes
// (GenerateMasterKey makes one). It keeps no reference to key.
func NewLocalKey(key []byte) (*LocalKey, error) {
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("seal: master key of %d bytes, want %d", len(key), MasterKeySize)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("seal: master key: %w", err)
	}
	return &LocalKey{id: localKeyID(key), aead: aead}, nil
}

// localKeyID is "local:" and the first 64 bits of a domain-separated
// SHA-256 of the key: stable, enough to tell keys apart, and useless for
// guessing a 256-bit random key.
func localKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("certfleet seal: master key ID\n"))
	h.Write(key)
	return "local:" + hex.EncodeToString(h.Sum(nil)[:8])
}

// ID implements KeyWrapper.
func (k *LocalKey) ID() string { return k.id }

// Wrap implements KeyWrapper.
func (k *LocalKey) Wrap(_ context.Context, dek []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(dek)+tagSize)
	out[0] = wrapFormatV1
	r := k.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, out[1:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return k.aead.Seal(out, out[1:], dek, []byte(wrapAADPrefix+k.id)), nil
}

// Unwrap implements KeyWrapper.
func (k *LocalKey) Unwrap(_ context.Context, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 1+nonceSize+tagSize {
		return nil, fmt.Errorf("wrapped data key of %d bytes is too short: %w", len(wrapped), ErrMalformed)
	}
	if wrapped[0] != wrapFormatV1 {
		return nil, fmt.Errorf("wrapped data key in format version %d, which this certfleet does not know: %w", wrapped[0], ErrMalformed)
	}
	dek, err := k.aead.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], []byte(wrapAADPrefix+k.id))
	if err != nil {
		return nil, fmt.Errorf("wrapped data key: %w (altered, or wrapped by another key)", ErrAuthFailed)
	}
	return dek, nil
}

// String returns "seal.LocalKey(ID)": never the key.
func (k LocalKey) String() string { return "seal.LocalKey(" + k.id + ")" }

// GoString is String, so %#v does not print the key schedule.
func (k LocalKey) GoString() string { return k.String() }

// LogValue logs the ID only.
func (k LocalKey) LogValue() slog.Value { return slog.StringValue(k.id) }

// GenerateMasterKey returns MasterKeySize random bytes from crypto/rand.
func GenerateMasterKey() ([]byte, error) {
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("seal: generate master key: %w", err)
	}
	return key, nil
}

// EncodeMasterKey returns the text form of a master key: standard base64
// (44 characters) and a newline, the content of a master key file or the
// value of an environment variable (without the newline).
func EncodeMasterKey(key []byte) string {
	return base64.StdEncoding.EncodeToString(key) + "\n"
}

// ParseMasterKey decodes the text form of a master key: base64 (standard,
// padded, 44 characters) or hex (64 characters), surrounding white space
// ignored. Its errors give lengths, never content.
func ParseMasterKey(text string) ([]byte, error) {
	t := strings.TrimSpace(text)
	var key []byte
	var err error
	switch len(t) {
	case 2 * MasterKeySize:
		key, err = hex.DecodeString(t)
	case base64.StdEncoding.EncodedLen(MasterKeySize):
		key, err = base64.StdEncoding.Strict().DecodeString(t)
	default:
		return nil, fmt.Errorf("master key of %d characters: want %d bytes as base64 (%d characters) or hex (%d characters); make one with GenerateMasterKey (certfleet master-key generate)",
			len(t), MasterKeySize, base64.StdEncoding.EncodedLen(MasterKeySize), 2*MasterKeySize)
	}
	if err != nil || len(key) != MasterKeySize {
		// The decoder's error quotes the offending byte's position only,
		// but keep even that out: say what is expected.
		return nil, fmt.Errorf("master key of %d characters is neither valid base64 nor valid hex of %d bytes", len(t), MasterKeySize)
	}
	return key, nil
}

// LocalKeyFromText returns a LocalKey from the text form of a master key
// (ParseMasterKey), for example the value of an environment variable that
// cmd read; source names it in errors ("environment variable
// CERTFLEET_MASTER_KEY").
func LocalKeyFromText(text, source string) (*LocalKey, error) {
	key, err := ParseMasterKey(text)
	if err != nil {
		return nil, fmt.Errorf("seal: %s: %w", source, err)
	}
	return NewLocalKey(key)
}

// maxKeyFile bounds what LoadMasterKeyFile reads: a master key file is one
// short line.
const maxKeyFile = 4096

// LoadMasterKeyFile reads a master key file (one line, the text form of
// ParseMasterKey). It refuses, with an error matching ErrInsecureKeyFile, a
// file whose mode grants its group or others any access: a master key that
// other users can read protects nothing. The mode is checked on the opened
// file, so a rename race cannot swap in another one.
func LoadMasterKeyFile(path string) (*LocalKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: master key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("seal: master key file %s has mode %04o: %w; it must be accessible by its owner only (chmod 600 %s)",
			path, perm, ErrInsecureKeyFile, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("seal: read master key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("seal: master key file %s is larger than %d bytes: it should hold one line", path, maxKeyFile)
	}
	key, err := ParseMasterKey(string(b))
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("seal: master key file %s: %w", path, err)
	}
	k, err := NewLocalKey(key)
	clear(key)
	return k, err
}

// WriteMasterKeyFile writes key's text form (EncodeMasterKey) to a new file
// of mode 0600 and syncs it. It refuses to overwrite an existing file: losing
// a master key makes every key sealed under it unreadable.
func WriteMasterKeyFile(path string, key []byte) error {
	if len(key) != MasterKeySize {
		return fmt.Errorf("seal: master key of %d bytes, want %d", len(key), MasterKeySize)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("seal: master key file %s exists: not overwriting it (the keys sealed under it would be lost); choose another path", path)
	} else if err != nil {
		return fmt.Errorf("seal: create master key file: %w", err)
	}
	_, err = f.WriteString(EncodeMasterKey(key))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("seal: write master key file %s: %w", path, err)
	}
	return nil
}
