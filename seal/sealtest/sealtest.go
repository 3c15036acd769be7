// Package sealtest holds test helpers for package seal: MemDEKStore, an
// in-memory seal.DEKStore (the reference implementation of the contract), and
// RunDEKStore, the contract suite that the sqlite and postgres DEKStores run
// in their tests.
//
// It is for tests only: MemDEKStore keeps nothing across restarts, so data
// sealed with it is lost with the process. Import it from _test.go files.
package sealtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/seal"
)

// MemDEKStore is an in-memory seal.DEKStore. Its zero value is empty and
// ready; it is safe for concurrent use.
type MemDEKStore struct {
	mu   sync.Mutex // guards keys
	keys []seal.WrappedDEK
}

var _ seal.DEKStore = (*MemDEKStore)(nil)

// DataKeys implements seal.DEKStore.
func (m *MemDEKStore) DataKeys(ctx context.Context) ([]seal.WrappedDEK, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]seal.WrappedDEK, len(m.keys))
	for i, k := range m.keys {
		out[i] = clone(k)
	}
	return out, nil
}

// CreateDataKey implements seal.DEKStore.
func (m *MemDEKStore) CreateDataKey(ctx context.Context, d seal.WrappedDEK) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.keys) > 0 {
		return seal.ErrDataKeyExists
	}
	m.keys = append(m.keys, clone(d))
	return nil
}

// RewrapDataKey implements seal.DEKStore.
func (m *MemDEKStore) RewrapDataKey(ctx context.Context, oldKEKID string, d seal.WrappedDEK) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, k := range m.keys {
		if k.ID != d.ID {
			continue
		}
		if k.KEKID != oldKEKID {
			return false, nil
		}
		m.keys[i] = clone(d)
		return true, nil
	}
	return false, fmt.Errorf("data key %s: %w", d.ID, seal.ErrUnknownDataKey)
}

// Put replaces the store's content, for tests that set up or tamper with
// records directly.
func (m *MemDEKStore) Put(keys ...seal.WrappedDEK) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = m.keys[:0]
	for _, k := range keys {
		m.keys = append(m.keys, clone(k))
	}
}

func clone(d seal.WrappedDEK) seal.WrappedDEK {
	d.Wrapped = bytes.Clone(d.Wrapped)
	return d
}

// RunDEKStore runs the seal.DEKStore contract against fresh, empty stores
// made by newStore, and checks that a seal.Sealer works on top of one (a
// value sealed by one Sealer opens in another on the same store, also after a
// rotation).
func RunDEKStore(t *testing.T, newStore func(t *testing.T) seal.DEKStore) {
	t.Run("Empty", func(t *testing.T) {
		got, err := newStore(t).DataKeys(t.Context())
		if err != nil || len(got) != 0 {
			t.Fatalf("DataKeys of an empty store = %v, %v; want none, nil", got, err)
		}
	})
	t.Run("CreateOnce", func(t *testing.T) { testCreateOnce(t, newStore(t)) })
	t.Run("CreateRace", func(t *testing.T) { testCreateRace(t, newStore(t)) })
	t.Run("Rewrap", func(t *testing.T) { testRewrap(t, newStore(t)) })
	t.Run("Sealer", func(t *testing.T) { testSealer(t, newStore(t)) })
}

func testCreateOnce(t *testing.T, s seal.DEKStore) {
	ctx := t.Context()
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	d := seal.WrappedDEK{ID: "dek-0001", KEKID: "local:aa", Wrapped: []byte{1, 2, 3}, Created: created}
	if err := s.CreateDataKey(ctx, d); err != nil {
		t.Fatalf("CreateDataKey: %v", err)
	}
	d.Wrapped[0] = 9 // the store must have kept a copy
	other := seal.WrappedDEK{ID: "dek-0002", KEKID: "local:aa", Wrapped: []byte{4}, Created: created}
	if err := s.CreateDataKey(ctx, other); !errors.Is(err, seal.ErrDataKeyExists) {
		t.Fatalf("second CreateDataKey: %v, want ErrDataKeyExists", err)
	}
	got, err := s.DataKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := seal.WrappedDEK{ID: "dek-0001", KEKID: "local:aa", Wrapped: []byte{1, 2, 3}, Created: created}
	if len(got) != 1 || !equal(got[0], want) {
		t.Fatalf("DataKeys = %+v, want [%+v]", got, want)
	}
}

func testCreateRace(t *testing.T, s seal.DEKStore) {
	ctx := t.Context()
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateDataKey(ctx, seal.WrappedDEK{ID: fmt.Sprintf("dek-%04d", i), KEKID: "local:aa",
				Wrapped: []byte{byte(i)}, Created: time.Now().UTC()})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, seal.ErrDataKeyExists):
			t.Errorf("creator %d: %v, want nil or ErrDataKeyExists", i, err)
		}
	}
	got, err := s.DataKeys(ctx)
	if won != 1 || err != nil || len(got) != 1 {
		t.Fatalf("%d of %d racing creators won and the store holds %d data keys (%v); want exactly one", won, n, len(got), err)
	}
}

func testRewrap(t *testing.T, s seal.DEKStore) {
	ctx := t.Context()
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.CreateDataKey(ctx, seal.WrappedDEK{ID: "dek-0001", KEKID: "local:old", Wrapped: []byte{1}, Created: created}); err != nil {
		t.Fatal(err)
	}
	next := seal.WrappedDEK{ID: "dek-0001", KEKID: "local:new", Wrapped: []byte{2, 2}, Created: created}
	if ok, err := s.RewrapDataKey(ctx, "local:other", next); ok || err != nil {
		t.Fatalf("RewrapDataKey from the wrong master key = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.RewrapDataKey(ctx, "local:old", next); !ok || err != nil {
		t.Fatalf("RewrapDataKey = %v, %v; want true, nil", ok, err)
	}
	if ok, err := s.RewrapDataKey(ctx, "local:old", next); ok || err != nil {
		t.Fatalf("RewrapDataKey again (already done) = %v, %v; want false, nil", ok, err)
	}
	unknown := seal.WrappedDEK{ID: "dek-none", KEKID: "local:new", Wrapped: []byte{3}, Created: created}
	if ok, err := s.RewrapDataKey(ctx, "local:old", unknown); ok || !errors.Is(err, seal.ErrUnknownDataKey) {
		t.Fatalf("RewrapDataKey of an unknown data key = %v, %v; want false, ErrUnknownDataKey", ok, err)
	}
	got, err := s.DataKeys(ctx)
	if err != nil || len(got) != 1 || !equal(got[0], next) {
		t.Fatalf("DataKeys = %+v, %v; want [%+v]", got, err, next)
	}
}

func testSealer(t *testing.T, s seal.DEKStore) {
	ctx := t.Context()
	oldKey, newKey := NewKEK(t), NewKEK(t)
	a, err := seal.New(ctx, seal.Config{Store: s, KEK: oldKey})
	if err != nil {
		t.Fatalf("seal.New on an empty store: %v", err)
	}
	aad := seal.AAD("contract", "1")
	sealed, err := a.Seal([]byte("secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.New(ctx, seal.Config{Store: s, KEK: newKey, Previous: []seal.KeyWrapper{oldKey}})
	if err != nil {
		t.Fatalf("seal.New with new and old master keys: %v", err)
	}
	if _, err := b.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	c, err := seal.New(ctx, seal.Config{Store: s, KEK: newKey})
	if err != nil {
		t.Fatalf("seal.New with the new master key only, after rotation: %v", err)
	}
	for name, x := range map[string]*seal.Sealer{"creator": a, "rotator": b, "after rotation": c} {
		if got, err := x.Open(sealed, aad); err != nil || string(got) != "secret" {
			t.Errorf("%s: Open = %q, %v; want the plaintext", name, got, err)
		}
	}
	if _, err := seal.New(ctx, seal.Config{Store: s, KEK: oldKey}); !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Errorf("seal.New with the retired master key only: %v, want ErrWrongMasterKey", err)
	}
}

// NewKEK returns a new local master key (key-encryption key).
func NewKEK(t testing.TB) *seal.LocalKey {
	t.Helper()
	raw, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.NewLocalKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func equal(a, b seal.WrappedDEK) bool {
	return a.ID == b.ID && a.KEKID == b.KEKID && slices.Equal(a.Wrapped, b.Wrapped) && a.Created.Equal(b.Created)
}
