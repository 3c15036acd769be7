package storetest

// The archive: every issuance is kept, and found by ID and by filter.

import (
	"slices"
	"testing"

	"github.com/certfleet/certfleet"
)

func testArchive(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	a, b := NewSpec("a", certfleet.RSA2048, certfleet.ECDSAP256), NewSpec("b")
	mustSync(t, s, certfleet.SourceConfig, a, b)
	first := mustComplete(t, s, a, certfleet.ECDSAP256)
	rsa := mustComplete(t, s, a, certfleet.RSA2048)
	other := mustComplete(t, s, b, certfleet.ECDSAP256)
	key := keyOf("a", certfleet.ECDSAP256)
	if err := s.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	second := mustComplete(t, s, a, certfleet.ECDSAP256)

	if j := mustJob(t, s, key); j.CurrentID != second.ID {
		t.Errorf("CurrentID = %d, want the second issuance %d", j.CurrentID, second.ID)
	}
	got, err := s.Issuance(t.Context(), first.ID)
	if err != nil {
		t.Fatalf("first issuance lost: %v", err)
	}
	checkIssuance(t, got, first)

	ids := func(list []certfleet.Issuance) []int64 {
		var out []int64
		for _, i := range list {
			out = append(out, i.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    certfleet.IssuanceFilter
		want []int64
	}{
		{"all", certfleet.IssuanceFilter{}, []int64{second.ID, other.ID, rsa.ID, first.ID}},
		{"spec", certfleet.IssuanceFilter{Spec: "a"}, []int64{second.ID, rsa.ID, first.ID}},
		{"lineage", certfleet.IssuanceFilter{Spec: "a", KeyType: certfleet.ECDSAP256}, []int64{second.ID, first.ID}},
		{"key type", certfleet.IssuanceFilter{KeyType: certfleet.ECDSAP256}, []int64{second.ID, other.ID, first.ID}},
		{"limit", certfleet.IssuanceFilter{Spec: "a", Limit: 1}, []int64{second.ID}},
		{"none", certfleet.IssuanceFilter{Spec: "nope"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.Issuances(t.Context(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(list); !slices.Equal(got, tc.want) {
				t.Errorf("Issuances(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
	list, _ := s.Issuances(t.Context(), certfleet.IssuanceFilter{Limit: 1})
	if len(list) == 1 {
		checkIssuance(t, list[0], second)
	}
}
