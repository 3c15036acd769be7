package seal_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
)

func TestDEKStoreContract(t *testing.T) {
	sealtest.RunDEKStore(t, func(*testing.T) seal.DEKStore { return new(sealtest.MemDEKStore) })
}

// testKey is a master key with its raw bytes, so tests can check that no
// error or log line contains them.
type testKey struct {
	raw []byte
	*seal.LocalKey
}

func newTestKey(t *testing.T) testKey {
	t.Helper()
	raw, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.NewLocalKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{raw: raw, LocalKey: k}
}

func mustNew(t *testing.T, store seal.DEKStore, kek seal.KeyWrapper, previous ...seal.KeyWrapper) *seal.Sealer {
	t.Helper()
	s, err := seal.New(t.Context(), seal.Config{Store: store, KEK: kek, Previous: previous})
	if err != nil {
		t.Fatalf("seal.New: %v", err)
	}
	return s
}

func mustSeal(t testing.TB, s *seal.Sealer, plaintext, aad []byte) []byte {
	t.Helper()
	b, err := s.Seal(plaintext, aad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return b
}

const pemKey = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"

func TestRoundTrip(t *testing.T) {
	s := mustNew(t, new(sealtest.MemDEKStore), newTestKey(t))
	aad := seal.AAD("issuances.key_pem", "web", "ecdsa-p256", "ab12")
	for _, n := range []int{0, 1, 241, 1704, 1 << 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := bytes.Repeat([]byte("k"), n)
			if n > len(pemKey) {
				copy(pt, pemKey)
			}
			a, b := mustSeal(t, s, pt, aad), mustSeal(t, s, pt, aad)
			if !seal.IsSealed(a) {
				t.Fatalf("IsSealed(sealed) = false")
			}
			if got, want := len(a), n+seal.Overhead(len("dek-0123456789abcdef")); got != want {
				t.Errorf("sealed length %d, want %d", got, want)
			}
			if bytes.Equal(a, b) {
				t.Errorf("sealing twice gave the same bytes: the nonce is not random")
			}
			if n > 8 && bytes.Contains(a, pt[:8]) {
				t.Errorf("sealed value contains the plaintext")
			}
			for _, sealed := range [][]byte{a, b} {
				got, err := s.Open(sealed, aad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Open = %d bytes, %v; want the %d-byte plaintext", len(got), err, n)
				}
			}
		})
	}
}

func TestOpenWrongAAD(t *testing.T) {
	s := mustNew(t, new(sealtest.MemDEKStore), newTestKey(t))
	sealed := mustSeal(t, s, []byte(pemKey), seal.AAD("issuances.key_pem", "42"))
	for _, aad := range [][]byte{
		seal.AAD("issuances.key_pem", "43"),
		seal.AAD("accounts.key_pem", "42"),
		seal.AAD("issuances.key_pem", "4", "2"),
		seal.AAD("issuances.key_pem:42"),
		nil,
	} {
		got, err := s.Open(sealed, aad)
		if !errors.Is(err, seal.ErrAuthFailed) || got != nil {
			t.Errorf("Open with additional data %q = %q, %v; want nil, ErrAuthFailed", aad, got, err)
		}
	}
	if got, err := s.Open(sealed, seal.AAD("issuances.key_pem", "42")); err != nil || string(got) != pemKey {
		t.Fatalf("Open with the right additional data = %v", err)
	}
}

func TestAADIsUnambiguous(t *testing.T) {
	cases := [][]string{{"a:b", "c"}, {"a", "b:c"}, {"a", "b", "c"}, {"abc"}, {"", "abc"}, {"abc", ""}, {}}
	seen := map[string][]string{}
	for _, c := range cases {
		k := string(seal.AAD(c...))
		if prev, dup := seen[k]; dup {
			t.Errorf("AAD(%q) == AAD(%q)", c, prev)
		}
		seen[k] = c
	}
}

// TestTamper flips every bit of a sealed value, and truncates and extends
// it: nothing opens.
func TestTamper(t *testing.T) {
	s := mustNew(t, new(sealtest.MemDEKStore), newTestKey(t))
	aad := seal.AAD("accounts.key_pem", "ca", "default")
	sealed := mustSeal(t, s, []byte(pemKey), aad)
	for i := range sealed {
		for bit := range 8 {
			b := bytes.Clone(sealed)
			b[i] ^= 1 << bit
			if got, err := s.Open(b, aad); err == nil || got != nil {
				t.Fatalf("byte %d bit %d flipped: Open succeeded", i, bit)
			}
		}
	}
	for n := range len(sealed) {
		if _, err := s.Open(sealed[:n], aad); err == nil {
			t.Fatalf("truncated to %d bytes: Open succeeded", n)
		}
	}
	if _, err := s.Open(append(bytes.Clone(sealed), 0), aad); err == nil {
		t.Fatal("extended by a byte: Open succeeded")
	}
	// The header and the nonce in particular, with the error each gives.
	hdr := 3 + 2 + len("dek-0123456789abcdef")
	flip := func(at int) func([]byte) { return func(b []byte) { b[at] ^= 0x01 } }
	for _, tc := range []struct {
		name  string
		alter func(b []byte)
		want  error
	}{
		{"magic", flip(0), seal.ErrNotSealed},
		{"version", flip(3), seal.ErrMalformed},
		{"id length zero", func(b []byte) { b[4] = 0 }, seal.ErrMalformed},
		{"id length too long", func(b []byte) { b[4] = 65 }, seal.ErrMalformed},
		{"id character", func(b []byte) { b[10] = '/' }, seal.ErrMalformed},
		{"id", func(b []byte) { // another well-formed ID: a different hex digit
			if b[10] == '0' {
				b[10] = '1'
			} else {
				b[10] = '0'
			}
		}, seal.ErrUnknownDataKey},
		{"nonce", flip(hdr), seal.ErrAuthFailed},
		{"ciphertext", flip(hdr + 12), seal.ErrAuthFailed},
		{"tag", flip(len(sealed) - 1), seal.ErrAuthFailed},
	} {
		b := bytes.Clone(sealed)
		tc.alter(b)
		if _, err := s.Open(b, aad); !errors.Is(err, tc.want) {
			t.Errorf("%s altered: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIsSealed(t *testing.T) {
	s := mustNew(t, new(sealtest.MemDEKStore), newTestKey(t))
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"nil", nil, false},
		{"PEM", []byte(pemKey), false},
		{"magic only", []byte{0xCF, 'S', 'K'}, false},
		{"newer version", []byte{0xCF, 'S', 'K', 2, 1, 'x'}, true},
		{"sealed", mustSeal(t, s, []byte(pemKey), nil), true},
		{"sealed empty", mustSeal(t, s, nil, nil), true},
	} {
		if got := seal.IsSealed(tc.b); got != tc.want {
			t.Errorf("%s: IsSealed = %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := s.Open([]byte(pemKey), nil); !errors.Is(err, seal.ErrNotSealed) {
		t.Errorf("Open(plaintext PEM) = %v, want ErrNotSealed", err)
	}
}

func TestUnknownDataKey(t *testing.T) {
	k := newTestKey(t)
	a := mustNew(t, new(sealtest.MemDEKStore), k)
	b := mustNew(t, new(sealtest.MemDEKStore), k) // same master key, another store
	sealed := mustSeal(t, a, []byte(pemKey), nil)
	if _, err := b.Open(sealed, nil); !errors.Is(err, seal.ErrUnknownDataKey) {
		t.Fatalf("Open of another store's value = %v, want ErrUnknownDataKey", err)
	}
}

func TestWrongMasterKey(t *testing.T) {
	store := new(sealtest.MemDEKStore)
	right, wrong := newTestKey(t), newTestKey(t)
	mustNew(t, store, right)
	_, err := seal.New(t.Context(), seal.Config{Store: store, KEK: wrong})
	var wk *seal.WrongKeyError
	if !errors.As(err, &wk) || !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("seal.New with the wrong master key = %v, want a *WrongKeyError", err)
	}
	if wk.KEKID != right.ID() || len(wk.Have) != 1 || wk.Have[0] != wrong.ID() {
		t.Errorf("WrongKeyError = %+v, want KEKID %s, Have [%s]", wk, right.ID(), wrong.ID())
	}
	for _, id := range []string{right.ID(), wrong.ID()} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not name master key %s", err, id)
		}
	}
	assertNoSecret(t, err.Error(), right.raw, wrong.raw)
}

// TestTamperedWrappedDEK: an altered data key record (a hand-edited row, a
// KMS returning garbage) fails authentication, naming both keys' IDs.
func TestTamperedWrappedDEK(t *testing.T) {
	store := new(sealtest.MemDEKStore)
	k := newTestKey(t)
	mustNew(t, store, k)
	recs, _ := store.DataKeys(t.Context())
	recs[0].Wrapped[len(recs[0].Wrapped)-1] ^= 1
	store.Put(recs...)
	_, err := seal.New(t.Context(), seal.Config{Store: store, KEK: k})
	if !errors.Is(err, seal.ErrAuthFailed) || !strings.Contains(err.Error(), recs[0].ID) || !strings.Contains(err.Error(), k.ID()) {
		t.Fatalf("seal.New over an altered wrapped data key = %v; want ErrAuthFailed naming the data key and master key", err)
	}
}

func TestNoMasterKey(t *testing.T) {
	ctx := t.Context()
	store := new(sealtest.MemDEKStore)
	if _, err := seal.New(ctx, seal.Config{Store: store}); !errors.Is(err, seal.ErrNoMasterKey) {
		t.Fatalf("seal.New without a master key = %v, want ErrNoMasterKey", err)
	}
	const hint = "file: /etc/certfleet/master.key, env: CERTFLEET_MASTER_KEY"
	if err := seal.CheckNoDataKeys(ctx, store, hint); err != nil {
		t.Fatalf("CheckNoDataKeys on an empty store = %v", err)
	}
	mustNew(t, store, newTestKey(t))
	err := seal.CheckNoDataKeys(ctx, store, hint)
	var mk *seal.MissingKeyError
	if !errors.As(err, &mk) || !errors.Is(err, seal.ErrNoMasterKey) {
		t.Fatalf("CheckNoDataKeys over sealed data = %v, want a *MissingKeyError", err)
	}
	want := "the store holds encrypted keys; start certfleet with the master key (" + hint + ")"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// TestRotation: values sealed under the old master key open after the
// rotation, in the processes that were running and in ones started with the
// new key only; the old key is then retired.
func TestRotation(t *testing.T) {
	ctx := t.Context()
	store := new(sealtest.MemDEKStore)
	oldKey, newKey := newTestKey(t), newTestKey(t)
	running := mustNew(t, store, oldKey)
	aad := seal.AAD("issuances.key_pem", "1")
	before := mustSeal(t, running, []byte(pemKey), aad)

	// Only the new key, no previous: cannot unwrap, cannot rotate.
	if _, err := seal.New(ctx, seal.Config{Store: store, KEK: newKey}); !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("seal.New with the new key only, before rotation: %v, want ErrWrongMasterKey", err)
	}
	rotator := mustNew(t, store, newKey, oldKey)
	res, err := rotator.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if res.KEKID != newKey.ID() || res.DataKeys != 1 || len(res.Rewrapped) != 1 || res.Rewrapped[0].FromKEKID != oldKey.ID() {
		t.Fatalf("Rotate = %+v, want one data key moved from %s to %s", res, oldKey.ID(), newKey.ID())
	}
	recs, _ := store.DataKeys(ctx)
	if recs[0].KEKID != newKey.ID() {
		t.Fatalf("after rotation the data key is wrapped by %s, want %s", recs[0].KEKID, newKey.ID())
	}
	if res, err := rotator.Rotate(ctx); err != nil || len(res.Rewrapped) != 0 {
		t.Fatalf("Rotate again = %+v, %v; want nothing to do", res, err)
	}

	// The old key is retired: a process with the new key alone opens
	// everything, and the running one (old key) keeps working.
	after := mustNew(t, store, newKey)
	during := mustSeal(t, running, []byte(pemKey), aad)
	for _, v := range [][]byte{before, during, mustSeal(t, after, []byte(pemKey), aad)} {
		for name, s := range map[string]*seal.Sealer{"running": running, "rotator": rotator, "new key only": after} {
			if got, err := s.Open(v, aad); err != nil || string(got) != pemKey {
				t.Fatalf("%s: Open = %v", name, err)
			}
		}
	}
	// A process started with only the retired key fails, naming both IDs.
	_, err = seal.New(ctx, seal.Config{Store: store, KEK: oldKey})
	if !errors.Is(err, seal.ErrWrongMasterKey) || !strings.Contains(err.Error(), newKey.ID()) || !strings.Contains(err.Error(), oldKey.ID()) {
		t.Fatalf("seal.New with the retired key = %v; want ErrWrongMasterKey naming both keys", err)
	}
	assertNoSecret(t, err.Error(), oldKey.raw, newKey.raw)

	// Rotating without the key that wraps the data key fails clearly.
	third := newTestKey(t)
	r2, err := seal.New(ctx, seal.Config{Store: store, KEK: third, Previous: []seal.KeyWrapper{oldKey}})
	if !errors.Is(err, seal.ErrWrongMasterKey) || r2 != nil {
		t.Fatalf("seal.New with neither the current nor a previous key = %v", err)
	}
}

// TestRotateUnderLoad: many goroutines of two running instances seal and
// open while a third rotates the master key back and forth and new
// instances start with both keys; every value opens everywhere (-race).
func TestRotateUnderLoad(t *testing.T) {
	ctx := t.Context()
	store := new(sealtest.MemDEKStore)
	k1, k2 := newTestKey(t), newTestKey(t)
	a := mustNew(t, store, k1)
	b := mustNew(t, store, k1, k2)
	rotators := []*seal.Sealer{mustNew(t, store, k2, k1), mustNew(t, store, k1, k2)}

	var (
		stop    atomic.Bool
		mu      sync.Mutex
		values  = map[string][]byte{} // aad → sealed
		wg      sync.WaitGroup
		opened  atomic.Int64
		rotated atomic.Int64
		errs    = make(chan error, 100)
	)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
		stop.Store(true)
	}
	for g := range 16 {
		s := a
		if g%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				aad := fmt.Sprintf("issuance:%d:%d", g, i)
				pt := []byte(pemKey + aad)
				v, err := s.Seal(pt, []byte(aad))
				if err != nil {
					report(err)
					return
				}
				got, err := s.Open(v, []byte(aad))
				if err != nil || !bytes.Equal(got, pt) {
					report(fmt.Errorf("goroutine %d: Open own value: %v", g, err))
					return
				}
				opened.Add(1)
				mu.Lock()
				values[aad] = v
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			if _, err := rotators[i%2].Rotate(ctx); err != nil {
				report(fmt.Errorf("rotation %d: %w", i, err))
				return
			}
			// An instance starting mid-rotation with both keys.
			if _, err := seal.New(ctx, seal.Config{Store: store, KEK: k1, Previous: []seal.KeyWrapper{k2}}); err != nil {
				report(fmt.Errorf("start during rotation %d: %w", i, err))
				return
			}
			rotated.Add(1)
		}
	})
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if rotated.Load() < 4 || opened.Load() < 100 {
		t.Fatalf("only %d rotations and %d seal/open pairs ran", rotated.Load(), opened.Load())
	}
	// Finish on k2 and retire k1: everything opens with k2 alone.
	if _, err := rotators[0].Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	final := mustNew(t, store, k2)
	for aad, v := range values {
		if _, err := final.Open(v, []byte(aad)); err != nil {
			t.Fatalf("after rotation, with the new key alone: Open %s: %v", aad, err)
		}
	}
	t.Logf("%d rotations, %d values sealed and opened", rotated.Load(), opened.Load())
}

// TestCreateRace: instances starting at once on an empty store agree on one
// data key, so each opens the others' values.
func TestCreateRace(t *testing.T) {
	store := new(sealtest.MemDEKStore)
	k := newTestKey(t)
	sealers := make([]*seal.Sealer, 8)
	var wg sync.WaitGroup
	errs := make([]error, len(sealers))
	for i := range sealers {
		wg.Go(func() { sealers[i], errs[i] = seal.New(t.Context(), seal.Config{Store: store, KEK: k}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	for i, a := range sealers {
		v := mustSeal(t, a, []byte("x"), nil)
		for j, b := range sealers {
			if _, err := b.Open(v, nil); err != nil {
				t.Fatalf("instance %d cannot open instance %d's value: %v", j, i, err)
			}
		}
	}
}

// TestNoSecretInErrors drives every error path with a known master key, data
// key and plaintext, and checks that no error text, nor the printed or logged
// LocalKey, contains any of them in any common encoding.
func TestNoSecretInErrors(t *testing.T) {
	ctx := t.Context()
	raw := bytes.Repeat([]byte{0xA7}, 32)
	k, err := seal.NewLocalKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	rnd := &counter{}
	store := new(sealtest.MemDEKStore)
	s, err := seal.New(ctx, seal.Config{Store: store, KEK: k, Rand: rnd})
	if err != nil {
		t.Fatal(err)
	}
	dek := make([]byte, 32) // the counter's first 32 bytes are the data key
	for i := range dek {
		dek[i] = byte(i)
	}
	secrets := [][]byte{raw, dek, []byte(pemKey)}
	sealed := mustSeal(t, s, []byte(pemKey), []byte("row"))

	var texts []string
	add := func(err error) {
		if err == nil {
			t.Fatal("expected an error")
		}
		texts = append(texts, err.Error())
	}
	_, err = s.Open(sealed, []byte("other row"))
	add(err)
	_, err = s.Open([]byte(pemKey), nil)
	add(err)
	bad := bytes.Clone(sealed)
	bad[5] = 0xFF // id length
	_, err = s.Open(bad, nil)
	add(err)
	bad = bytes.Clone(sealed)
	bad[7] = 0x00 // a byte of the ID outside the alphabet
	_, err = s.Open(bad, nil)
	add(err)
	_, err = seal.New(ctx, seal.Config{Store: store, KEK: newTestKey(t)})
	add(err)
	_, err = seal.ParseMasterKey(base64.StdEncoding.EncodeToString(raw)[:43] + "!")
	add(err)
	_, err = seal.ParseMasterKey(hex.EncodeToString(raw)[:63] + "z")
	add(err)
	_, err = seal.ParseMasterKey(hex.EncodeToString(raw) + "00")
	add(err)
	_, err = seal.LocalKeyFromText(base64.StdEncoding.EncodeToString(raw)[:40], "environment variable CERTFLEET_MASTER_KEY")
	add(err)
	_, err = k.Unwrap(ctx, bytes.Repeat([]byte{1}, 61))
	add(err)
	recs, _ := store.DataKeys(ctx)
	recs[0].Wrapped[20] ^= 1
	store.Put(recs...)
	_, err = seal.New(ctx, seal.Config{Store: store, KEK: k})
	add(err)

	var logged bytes.Buffer
	fmt.Fprintf(&logged, "%v %+v %#v %s %v %+v %#v", k, k, k, k, *k, *k, *k)
	texts = append(texts, logged.String())
	for _, s := range texts {
		assertNoSecret(t, s, secrets...)
	}
	if !strings.Contains(logged.String(), k.ID()) {
		t.Errorf("a printed LocalKey shows %q, want its ID", logged.String())
	}
}

// assertNoSecret fails if text holds any secret raw, in hex, in base64, as
// Go's %v of a byte slice, or (for text secrets) a 16-byte piece of it.
func assertNoSecret(t *testing.T, text string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		forms := []string{string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)),
			base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s), fmt.Sprint(s), fmt.Sprintf("%q", s)}
		for _, f := range forms {
			if len(f) > 16 && strings.Contains(text, f[:16]) || strings.Contains(text, f) {
				t.Errorf("text %q contains a secret", text)
			}
		}
	}
}

// counter is a deterministic "random" source: 0, 1, 2, ... (mod 256).
type counter struct{ n byte }

func (c *counter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

// Known answer: master key 0x40..0x5f, the counter as the source of the data
// key (0x00..0x1f), its ID (0x20..0x27) and the value's nonce (0x28..0x33),
// a LocalKey wrapping nonce of 0x80..0x8b. The committed bytes pin the
// format: if this test fails, the on-disk format changed, and that needs a
// new format version, not a new constant.
const (
	katPlaintext  = "certfleet known answer"
	katKeyID      = "011260399dbbff0f"
	katAADHex     = "1169737375616e6365732e6b65795f70656d037765620a65636473612d703235360461623132"
	katWrappedHex = "01" + "808182838485868788898a8b" + // version, nonce
		"2d5fbcc426712c8460639a237eaf9b2de8eddbc15972f003e69762cfcd087f63" + // wrapped data key
		"92ce27b404d0b5f75a9ba96287191757" // tag
	katSealedHex = "cf534b" + "01" + "14" + "64656b2d32303231323232333234323532363237" + // magic, version, ID length, "dek-2021222324252627"
		"28292a2b2c2d2e2f30313233" + // nonce
		"83d718b0950304e0b449316648d8e4c322d0b0f34a90" + // ciphertext
		"05353406a4090d9594508eec3df29239" // tag
)

var katAAD = seal.AAD("issuances.key_pem", "web", "ecdsa-p256", "ab12")

func TestKnownAnswer(t *testing.T) {
	ctx := t.Context()
	mk := make([]byte, 32)
	for i := range mk {
		mk[i] = 0x40 + byte(i)
	}
	k, err := seal.NewLocalKey(mk)
	if err != nil {
		t.Fatal(err)
	}
	k.Rand = &counter{n: 0x80}
	store := new(sealtest.MemDEKStore)
	s, err := seal.New(ctx, seal.Config{Store: store, KEK: k, Rand: &counter{},
		Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	sealed := mustSeal(t, s, []byte(katPlaintext), katAAD)
	recs, _ := store.DataKeys(ctx)
	if len(recs) != 1 {
		t.Fatalf("%d data keys", len(recs))
	}
	if got, want := k.ID(), "local:"+katKeyID; got != want {
		t.Errorf("master key ID = %s, want %s", got, want)
	}
	if got, want := recs[0].ID, "dek-2021222324252627"; got != want {
		t.Errorf("data key ID = %s, want %s", got, want)
	}
	if got := hex.EncodeToString(recs[0].Wrapped); got != katWrappedHex {
		t.Errorf("wrapped data key =\n%s\nwant\n%s", got, katWrappedHex)
	}
	if got := hex.EncodeToString(sealed); got != katSealedHex {
		t.Errorf("sealed =\n%s\nwant\n%s", got, katSealedHex)
	}

	// Independently of the package: decode both from the documented format
	// with crypto/aes alone.
	kekGCM := mustGCM(t, mk)
	w := recs[0].Wrapped
	if w[0] != 0x01 {
		t.Fatalf("wrapped version %d", w[0])
	}
	dek, err := kekGCM.Open(nil, w[1:13], w[13:], []byte("certfleet seal: data key wrapped by "+k.ID()))
	if err != nil {
		t.Fatalf("unwrap by the documented format: %v", err)
	}
	for i, b := range dek {
		if b != byte(i) {
			t.Fatalf("data key byte %d = %#x, want %#x", i, b, i)
		}
	}
	if !bytes.Equal(sealed[:4], []byte{0xCF, 'S', 'K', 0x01}) {
		t.Fatalf("magic and version = % x", sealed[:4])
	}
	n := int(sealed[4])
	hdr := sealed[:5+n]
	if string(hdr[5:]) != recs[0].ID {
		t.Fatalf("data key ID in the value = %q", hdr[5:])
	}
	nonce := sealed[5+n : 5+n+12]
	pt, err := mustGCM(t, dek).Open(nil, nonce, sealed[5+n+12:], append(bytes.Clone(hdr), katAAD...))
	if err != nil || string(pt) != katPlaintext {
		t.Fatalf("open by the documented format = %q, %v", pt, err)
	}
	if got, want := hex.EncodeToString(katAAD), katAADHex; got != want {
		t.Errorf("AAD encoding = %s, want %s", got, want)
	}
	// And the package opens the committed bytes.
	committed, _ := hex.DecodeString(katSealedHex)
	if got, err := s.Open(committed, katAAD); err != nil || string(got) != katPlaintext {
		t.Errorf("Open(committed known answer) = %q, %v", got, err)
	}
}

func mustGCM(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
