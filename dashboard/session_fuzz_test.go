package dashboard

import (
	"testing"
	"time"
)

// FuzzDecodeSession feeds arbitrary cookie values to the session parser:
// it must never panic, and it may accept only what encodeSession made
// (a value it accepts re-encodes to itself).
func FuzzDecodeSession(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := &Server{SessionKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now }}
	good := s.encodeSession(session{TokenID: "tok_0123456789ab", Expires: now.Add(time.Hour), Nonce: "00112233445566778899aabbccddeeff"})
	for _, seed := range []string{good, "", ".", "v1....", "v1.tok.1.n.", good[:len(good)-1], good + "A", "v1.a.b.c.d.e"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ss, ok := s.decodeSession(v)
		if !ok {
			return
		}
		if got := s.encodeSession(ss); got != v {
			t.Fatalf("accepted %q, which re-encodes as %q", v, got)
		}
		if !now.Before(ss.Expires) {
			t.Fatalf("accepted an expired session %q", v)
		}
	})
}
