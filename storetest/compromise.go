package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunCompromise runs the contract of certfleet.KeyBlocklist: a blocked key
// is reported blocked (others are not), blocking again keeps the first
// record, only full key IDs are accepted, and the list is oldest first.
func RunCompromise(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	t.Run("BlockKey", func(t *testing.T) { testBlockKey(t, newStore(t)) })
}

func testBlockKey(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	a, b := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	if blocked, err := s.KeyBlocked(ctx, a); err != nil || blocked {
		t.Fatalf("KeyBlocked before any block = %v, %v", blocked, err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.BlockKey(ctx, certfleet.BlockedKey{KeyID: a, Reason: "key compromise", Actor: "cli:root", BlockedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.BlockKey(ctx, certfleet.BlockedKey{KeyID: b, Reason: "key compromise", Actor: "cli:ops", BlockedAt: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	// Again, later, by someone else: the first record stays.
	if err := s.BlockKey(ctx, certfleet.BlockedKey{KeyID: a, Reason: "again", Actor: "cli:other", BlockedAt: at.Add(time.Hour)}); err != nil {
		t.Fatalf("blocking a key twice: %v", err)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{a, true}, {b, true}, {strings.Repeat("ef", 32), false}, {a[:16], false}} {
		if got, err := s.KeyBlocked(ctx, tc.id); err != nil || got != tc.want {
			t.Errorf("KeyBlocked(%s) = %v, %v; want %v", tc.id, got, err, tc.want)
		}
	}
	list, err := s.BlockedKeys(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("BlockedKeys = %+v, %v; want 2", list, err)
	}
	if list[0].KeyID != a || list[0].Reason != "key compromise" || list[0].Actor != "cli:root" || !list[0].BlockedAt.Equal(at) || list[1].KeyID != b {
		t.Fatalf("BlockedKeys = %+v", list)
	}
	for _, bad := range []string{"", a[:16], strings.ToUpper(a), a + "00", strings.Repeat("zz", 32)} {
		if err := s.BlockKey(ctx, certfleet.BlockedKey{KeyID: bad, Reason: "x", Actor: "cli:root"}); certfleet.ErrorCode(err) != certfleet.EINVALID {
			t.Errorf("BlockKey(%q) = %v, want EINVALID", bad, err)
		}
	}
}
