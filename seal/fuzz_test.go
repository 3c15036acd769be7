package seal_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
)

// FuzzOpen: Open never panics, whatever the input; it only ever opens the
// one value sealed for this additional data, and every failure is one of the
// package's errors.
func FuzzOpen(f *testing.F) {
	k, err := seal.NewLocalKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	s, err := seal.New(context.Background(), seal.Config{Store: new(sealtest.MemDEKStore), KEK: k, Rand: &counter{}})
	if err != nil {
		f.Fatal(err)
	}
	aad := []byte("row")
	good, _ := s.Seal([]byte(pemKey), aad)
	f.Add(good, aad)
	f.Add(good, []byte("other"))
	f.Add(good[:len(good)-1], aad)
	f.Add(good[:5], aad)
	f.Add([]byte(pemKey), aad)
	f.Add([]byte{0xCF, 'S', 'K', 1, 0}, []byte{})
	f.Add([]byte{0xCF, 'S', 'K', 1, 255}, []byte{})
	f.Add([]byte{0xCF, 'S', 'K', 2}, []byte{})
	f.Fuzz(func(t *testing.T, b, aad []byte) {
		pt, err := s.Open(b, aad)
		if err == nil {
			if !bytes.Equal(b, good) || string(aad) != "row" || string(pt) != pemKey {
				t.Fatalf("Open accepted a forged value (%d bytes)", len(b))
			}
			return
		}
		if pt != nil {
			t.Fatalf("Open returned plaintext with error %v", err)
		}
		if !errors.Is(err, seal.ErrNotSealed) && !errors.Is(err, seal.ErrMalformed) &&
			!errors.Is(err, seal.ErrUnknownDataKey) && !errors.Is(err, seal.ErrAuthFailed) {
			t.Fatalf("Open error %v matches none of the package's errors", err)
		}
		if seal.IsSealed(b) == errors.Is(err, seal.ErrNotSealed) {
			t.Fatalf("IsSealed = %v but Open says %v", seal.IsSealed(b), err)
		}
	})
}
