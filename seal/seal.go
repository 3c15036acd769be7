// Package seal encrypts secrets at rest (certificate private keys, account
// keys, TSIG and EAB secrets) by envelope encryption: every value is sealed
// with AES-256-GCM under a random 256-bit data key (DEK), and the data key is
// stored only wrapped by a master key (KEK) that lives outside the database —
// a file, an environment variable, or later a KMS behind KeyWrapper.
//
// One data key serves a whole store (see DEKStore for why, and docs/keys-at-rest.md
// for the trade-off against a data key per value). The wrapped data key is
// kept in the store; a Sealer unwraps it once, in New, and holds it in memory,
// so Seal and Open do no I/O and never call the master key. Rotating the master
// key (Sealer.Rotate) re-wraps the data key — O(1), whatever the number of
// sealed values — while every running Sealer keeps working.
//
// Sealed values are self-describing (a magic prefix, a format version and the
// ID of the data key) and bound by the caller's additional data to the row
// they belong to, so a value copied to another row does not open. IsSealed
// tells a sealed value from a legacy plaintext PEM.
//
// It deliberately does not read environment variables or configuration (cmd
// passes the master key in), does not know any table (the stores implement
// DEKStore and choose each value's additional data), and does not decide what
// a store does with plaintext rows: that policy belongs to the stores. The
// sealtest subpackage holds an in-memory DEKStore and the DEKStore contract
// suite, for tests.
package seal

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The sealed value format, version 1 (all of it is covered by the known-answer
// test; changing any byte of it needs a new version):
//
//	magic    3 bytes  0xCF 'S' 'K'. 0xCF followed by an ASCII byte is invalid
//	                  UTF-8, so no PEM block or other text starts this way.
//	version  1 byte   0x01
//	idlen    1 byte   length of the data key ID, 1..64
//	dek id   idlen bytes, [A-Za-z0-9._:-]
//	nonce    12 bytes, random
//	sealed   AES-256-GCM ciphertext of the plaintext, then its 16-byte tag
//
// The GCM additional data is the header (magic through dek id) followed by
// the caller's additional data, so neither the version, nor the data key ID,
// nor the row binding can be changed without Open failing.
//
// The value does not carry the master key's ID: the master key wraps the data
// key, not the values, and a rotation re-wraps the data key without touching a
// single value, so an ID written into each value would be stale after the
// first rotation. The master key's ID is in the data key's record (WrappedDEK).
const (
	formatV1  = 0x01
	nonceSize = 12 // GCM's standard nonce size
	tagSize   = 16
	maxIDLen  = 64
	// dekSize is AES-256's key size: 256-bit keys keep a comfortable margin
	// against multi-target and quantum (Grover) attacks at no cost that
	// matters for a few thousand private keys.
	dekSize = 32
)

var magic = [3]byte{0xCF, 'S', 'K'}

// Overhead is how many bytes sealing adds to a plaintext, for a data key ID of
// idLen bytes (the IDs New makes are 16 bytes: 49 bytes in all).
func Overhead(idLen int) int { return len(magic) + 2 + idLen + nonceSize + tagSize }

// Prefix returns the bytes every sealed value starts with, so that a store
// can tell sealed values from plaintext in SQL (the pass that seals keys
// stored before the master key). IsSealed is the check in Go.
func Prefix() []byte { return append([]byte(nil), magic[:]...) }

// IsSealed reports whether b starts like a sealed value: the magic and a
// version byte, of any version, so that a value written by a newer certfleet
// is not mistaken for plaintext (Open then says which version it is). It does
// not authenticate b: Open does. A PEM or any other text is never "sealed".
func IsSealed(b []byte) bool {
	return len(b) > len(magic) && bytes.Equal(b[:len(magic)], magic[:])
}

// AAD encodes the parts that identify a sealed value's row (for example
// AAD("accounts.key_pem", ca, name)) as additional data, each part prefixed
// by its length (uvarint), so that no two different lists of parts encode the
// same: ("a:b", "c") and ("a", "b:c") differ. The encoding is part of the
// on-disk format (a value opens only with the same bytes it was sealed with).
func AAD(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// Config configures New.
type Config struct {
	// Store holds the store's wrapped data keys. Required.
	Store DEKStore

	// KEK is the master key. It wraps the data key New creates in an empty
	// store, and Rotate re-wraps every data key under it. Required: without
	// it New returns an error matching ErrNoMasterKey.
	KEK KeyWrapper

	// Previous are retired or retiring master keys, accepted only to unwrap
	// data keys still wrapped by them: during a rotation window, configure
	// the new key as KEK and the old one here. Default none.
	Previous []KeyWrapper

	// Rand is the source of data keys, data key IDs and nonces. Default
	// crypto/rand.Reader; set it only in known-answer tests (reads are then
	// serialised by a mutex).
	Rand io.Reader

	// Now dates a new data key. Default time.Now.
	Now func() time.Time
}

// Sealer seals and opens values under the data keys of one store. Create it
// with New. It is safe for concurrent use; Seal and Open do no I/O and may be
// called while Rotate runs (here or in another process).
type Sealer struct {
	store    DEKStore
	kek      KeyWrapper
	wrappers map[string]KeyWrapper // by ID: KEK and Previous; read-only after New
	rand     io.Reader
	now      func() time.Time

	mu     sync.RWMutex       // guards deks, active
	deks   map[string]dataKey // by data key ID
	active string             // the data key Seal uses
}

type dataKey struct {
	aead    cipher.AEAD
	created time.Time
}

// New loads the store's wrapped data keys and unwraps each of them with the
// configured master keys, or, when the store holds none, creates one data key
// and stores it wrapped by cfg.KEK (of several instances starting on an empty
// store at once, one creates it and the others load it). It fails when any
// data key cannot be unwrapped: a *WrongKeyError names the master key that
// wrapped it and the ones this process has, never a key itself.
//
// New calls the master keys (and so a KMS) once per data key; Seal and Open
// never do.
func New(ctx context.Context, cfg Config) (*Sealer, error) {
	if cfg.Store == nil {
		return nil, errors.New("seal: no data key store given")
	}
	if cfg.KEK == nil {
		return nil, fmt.Errorf("seal: %w", ErrNoMasterKey)
	}
	s := &Sealer{
		store:    cfg.Store,
		kek:      cfg.KEK,
		wrappers: make(map[string]KeyWrapper),
		rand:     rand.Reader,
		now:      cfg.Now,
		deks:     make(map[string]dataKey),
	}
	if cfg.Rand != nil {
		s.rand = &lockedReader{r: cfg.Rand}
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, w := range append([]KeyWrapper{cfg.KEK}, cfg.Previous...) {
		if w == nil {
			return nil, errors.New("seal: nil previous master key")
		}
		id := w.ID()
		if id == "" {
			return nil, errors.New("seal: master key with an empty ID")
		}
		if _, dup := s.wrappers[id]; dup && w != cfg.KEK {
			continue // the same key given twice: harmless
		}
		s.wrappers[id] = w
	}

	recs, err := s.store.DataKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("seal: load data keys: %w", err)
	}
	if len(recs) == 0 {
		if err := s.createDataKey(ctx); err != nil {
			return nil, err
		}
		if recs, err = s.store.DataKeys(ctx); err != nil {
			return nil, fmt.Errorf("seal: load data keys: %w", err)
		}
		if len(recs) == 0 {
			return nil, errors.New("seal: the data key store returned no data key after one was created (DEKStore contract broken)")
		}
	}
	for _, rec := range recs {
		if err := s.load(ctx, rec); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// createDataKey makes a data key and stores it wrapped, unless another
// instance stored one first (ErrDataKeyExists), which the caller then loads.
func (s *Sealer) createDataKey(ctx context.Context) error {
	dek := make([]byte, dekSize)
	idb := make([]byte, 8)
	if _, err := io.ReadFull(s.rand, dek); err != nil {
		return fmt.Errorf("seal: generate data key: %w", err)
	}
	if _, err := io.ReadFull(s.rand, idb); err != nil {
		return fmt.Errorf("seal: generate data key ID: %w", err)
	}
	// 64 random bits: IDs from different stores do not collide, so a value
	// copied from another database fails as "unknown data key", not as a
	// confusing authentication failure.
	id := "dek-" + hex.EncodeToString(idb)
	wrapped, err := s.kek.Wrap(ctx, dek)
	if err != nil {
		return fmt.Errorf("seal: wrap new data key %s with master key %s: %w", id, s.kek.ID(), err)
	}
	rec := WrappedDEK{ID: id, KEKID: s.kek.ID(), Wrapped: wrapped, Created: s.now().UTC()}
	if err := s.store.CreateDataKey(ctx, rec); err != nil && !errors.Is(err, ErrDataKeyExists) {
		return fmt.Errorf("seal: store new data key %s: %w", id, err)
	}
	return nil
}

// load unwraps rec and caches its data key.
func (s *Sealer) load(ctx context.Context, rec WrappedDEK) error {
	if err := checkID(rec.ID); err != nil {
		return fmt.Errorf("seal: data key in the store: %w", err)
	}
	dek, err := s.unwrap(ctx, rec)
	if err != nil {
		return err
	}
	aead, err := newGCM(dek)
	if err != nil {
		return fmt.Errorf("seal: data key %s: %w", rec.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deks[rec.ID] = dataKey{aead: aead, created: rec.Created}
	// The newest data key seals (the earliest ID breaks ties), so every
	// instance seals under the same one.
	if cur, ok := s.deks[s.active]; !ok || rec.Created.After(cur.created) ||
		(rec.Created.Equal(cur.created) && rec.ID < s.active) {
		s.active = rec.ID
	}
	return nil
}

func (s *Sealer) unwrap(ctx context.Context, rec WrappedDEK) ([]byte, error) {
	w, ok := s.wrappers[rec.KEKID]
	if !ok {
		return nil, &WrongKeyError{DEKID: rec.ID, KEKID: rec.KEKID, Have: s.wrapperIDs()}
	}
	dek, err := w.Unwrap(ctx, rec.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("seal: unwrap data key %s with master key %s: %w", rec.ID, rec.KEKID, err)
	}
	if len(dek) != dekSize {
		return nil, fmt.Errorf("seal: data key %s unwrapped by master key %s is %d bytes, want %d", rec.ID, rec.KEKID, len(dek), dekSize)
	}
	return dek, nil
}

func (s *Sealer) wrapperIDs() []string {
	ids := make([]string, 0, len(s.wrappers))
	for id := range s.wrappers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// KEKID returns the ID of the master key new data keys are wrapped with.
func (s *Sealer) KEKID() string { return s.kek.ID() }

// Seal encrypts plaintext under the store's data key, bound to aad (use AAD
// to build it from the row's identity). The result is a fresh slice;
// plaintext is not modified. Sealing the same plaintext twice gives different
// values (random nonce).
//
// Nonces are 96 random bits, so one data key must not seal more than 2^32
// values (NIST SP 800-38D §8.3): at a million keys a year that is four
// thousand years.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	s.mu.RLock()
	id, dk := s.active, s.deks[s.active]
	s.mu.RUnlock()
	hdr := make([]byte, 0, Overhead(len(id))+len(plaintext))
	hdr = append(hdr, magic[:]...)
	hdr = append(hdr, formatV1, byte(len(id)))
	hdr = append(hdr, id...)
	hlen := len(hdr)
	out := hdr[:hlen+nonceSize]
	if _, err := io.ReadFull(s.rand, out[hlen:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return dk.aead.Seal(out, out[hlen:], plaintext, gcmAAD(hdr[:hlen], aad)), nil
}

// Open authenticates and decrypts a value made by Seal with the same aad. It
// returns an error matching ErrNotSealed for input that is not a sealed value
// (a legacy plaintext PEM: see IsSealed), ErrUnknownDataKey for a value sealed
// under a data key this store does not hold, and ErrAuthFailed for a value
// that was altered or belongs to another row. Error messages name the data
// key, never content.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	hdr, id, nonce, ct, err := parse(sealed)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	dk, ok := s.deks[id]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("seal: %w %s (the value was sealed for another database)", ErrUnknownDataKey, id)
	}
	pt, err := dk.aead.Open(nil, nonce, ct, gcmAAD(hdr, aad))
	if err != nil {
		return nil, fmt.Errorf("seal: open value sealed under data key %s: %w (it was altered, or copied from another row)", id, ErrAuthFailed)
	}
	return pt, nil
}

// parse splits a sealed value; it never panics on any input.
func parse(b []byte) (hdr []byte, id string, nonce, ct []byte, err error) {
	if len(b) < len(magic)+1 || !bytes.Equal(b[:len(magic)], magic[:]) {
		return nil, "", nil, nil, fmt.Errorf("seal: %w", ErrNotSealed)
	}
	if v := b[len(magic)]; v != formatV1 {
		return nil, "", nil, nil, fmt.Errorf("seal: value in format version %d, which this certfleet does not know (written by a newer version?): %w", v, ErrMalformed)
	}
	p := len(magic) + 1
	if len(b) < p+1 {
		return nil, "", nil, nil, fmt.Errorf("seal: value truncated in its header: %w", ErrMalformed)
	}
	n := int(b[p])
	p++
	if len(b) < p+n+nonceSize+tagSize {
		return nil, "", nil, nil, fmt.Errorf("seal: value of %d bytes is too short: %w", len(b), ErrMalformed)
	}
	id = string(b[p : p+n])
	if err := checkID(id); err != nil {
		return nil, "", nil, nil, fmt.Errorf("seal: %v: %w", err, ErrMalformed)
	}
	p += n
	return b[:p], id, b[p : p+nonceSize], b[p+nonceSize:], nil
}

// checkID accepts the data key IDs the format can carry. Its error does not
// quote the ID: a malformed one may be arbitrary bytes.
func checkID(id string) error {
	if len(id) == 0 || len(id) > maxIDLen {
		return fmt.Errorf("data key ID of %d bytes, want 1 to %d", len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return errors.New("data key ID with a character outside [A-Za-z0-9._:-]")
		}
	}
	return nil
}

func gcmAAD(hdr, aad []byte) []byte {
	// hdr ends with a length-prefixed ID, so it is self-delimiting and the
	// caller's additional data can follow it directly.
	return append(slices.Clip(hdr), aad...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// RotateResult says what Rotate did.
type RotateResult struct {
	// KEKID is the master key every data key is wrapped by now.
	KEKID string
	// Rewrapped lists the data keys this call re-wrapped, with the master
	// key each was wrapped by before. Empty when there was nothing to do.
	Rewrapped []Rewrap
	// DataKeys is how many data keys the store holds.
	DataKeys int
}

// Rewrap is one data key moved from one master key to another.
type Rewrap struct{ DEKID, FromKEKID string }

// Rotate re-wraps every data key of the store that is not wrapped by the
// configured KEK yet, unwrapping it with the master key that wrapped it (which
// must be the KEK or one of Previous). It re-wraps data keys, never values:
// it costs one unwrap and one wrap per data key, whatever the number of sealed
// values, and Seal and Open carry on meanwhile, here and in every other
// process sharing the store (they hold the unwrapped data keys). It is
// idempotent, and safe to run from several processes at once: each record is
// replaced by compare-and-swap on the master key that wrapped it.
//
// When it returns without error, no data key depends on any other master key:
// the previous key can be retired (after every process that may restart has
// the new one).
func (s *Sealer) Rotate(ctx context.Context) (RotateResult, error) {
	res := RotateResult{KEKID: s.kek.ID()}
	recs, err := s.store.DataKeys(ctx)
	if err != nil {
		return res, fmt.Errorf("seal: rotate: load data keys: %w", err)
	}
	for _, rec := range recs {
		if rec.KEKID == res.KEKID {
			continue
		}
		dek, err := s.unwrap(ctx, rec)
		if err != nil {
			return res, fmt.Errorf("seal: rotate: %w", err)
		}
		wrapped, err := s.kek.Wrap(ctx, dek)
		if err != nil {
			return res, fmt.Errorf("seal: rotate: wrap data key %s with master key %s: %w", rec.ID, res.KEKID, err)
		}
		next := WrappedDEK{ID: rec.ID, KEKID: res.KEKID, Wrapped: wrapped, Created: rec.Created}
		swapped, err := s.store.RewrapDataKey(ctx, rec.KEKID, next)
		if err != nil {
			return res, fmt.Errorf("seal: rotate: store data key %s: %w", rec.ID, err)
		}
		if swapped {
			res.Rewrapped = append(res.Rewrapped, Rewrap{DEKID: rec.ID, FromKEKID: rec.KEKID})
		}
	}
	// Check the outcome rather than trust it: another process may have
	// rotated the same records to yet another master key meanwhile.
	if recs, err = s.store.DataKeys(ctx); err != nil {
		return res, fmt.Errorf("seal: rotate: load data keys: %w", err)
	}
	res.DataKeys = len(recs)
	for _, rec := range recs {
		if rec.KEKID != res.KEKID {
			return res, fmt.Errorf("seal: rotate: data key %s is wrapped by master key %s after rotating to %s (another rotation ran at the same time?): run it again", rec.ID, rec.KEKID, res.KEKID)
		}
		s.mu.RLock()
		_, known := s.deks[rec.ID]
		s.mu.RUnlock()
		if !known { // created by another process since New
			if err := s.load(ctx, rec); err != nil {
				return res, fmt.Errorf("seal: rotate: %w", err)
			}
		}
	}
	return res, nil
}

// lockedReader serialises reads from a reader that may not be safe for
// concurrent use (a test's deterministic source).
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
