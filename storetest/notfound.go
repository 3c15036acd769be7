package storetest

// Every lookup of something absent answers ENOTFOUND and names it.

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
)

func testNotFound(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("present"))
	ctx := t.Context()
	key := keyOf("absent", certfleet.ECDSAP256)
	tests := []struct {
		name string
		do   func() error
		// what the message must name
		names string
	}{
		{"Spec", func() error { _, err := s.Spec(ctx, "absent"); return err }, "absent"},
		{"Job", func() error { _, err := s.Job(ctx, key); return err }, "absent"},
		{"Job of another key type", func() error {
			_, err := s.Job(ctx, keyOf("present", certfleet.RSA4096))
			return err
		}, "present"},
		{"Attempts", func() error { _, err := s.Attempts(ctx, key, 0); return err }, "absent"},
		{"RetryNow", func() error { return s.RetryNow(ctx, key) }, "absent"},
		{"Issuance", func() error { _, err := s.Issuance(ctx, 424242); return err }, "424242"},
		{"Account", func() error { _, err := s.Account(ctx, "https://ca.example/dir", "absent"); return err }, "absent"},
		{"Challenge", func() error { _, err := s.Challenge(ctx, certfleet.ChallengeHTTP01, "absent"); return err }, "absent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			wantCode(t, tc.name, err, certfleet.ENOTFOUND)
			if msg := certfleet.ErrorMessage(err); !strings.Contains(msg, tc.names) {
				t.Errorf("message %q does not name %q", msg, tc.names)
			}
		})
	}
}
