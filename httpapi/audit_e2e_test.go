package httpapi_test

import (
	"testing"

	"github.com/certfleet/certfleet"
)

// TestAuditRevocation: DELETE ?revoke=true against Pebble records the
// revocation (serial, issuance, reason) and the withdrawal, by the token.
func TestAuditRevocation(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	const name = "audit-revoke.e2e.test"
	st := e.issue(name, nil)
	if err := e.admin.DeleteName(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if got := e.certStatus(st.Keys[0].Serial); got != "Revoked" {
		t.Fatalf("CA says %q, want Revoked", got)
	}
	page, err := e.admin.Audit(ctx, certfleet.EventFilter{Certificate: name})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range page.Events {
		kinds = append(kinds, ev.Kind)
	}
	want := []string{certfleet.EventSpecChanged, certfleet.EventRevoked, certfleet.EventDeployed, certfleet.EventIssued, certfleet.EventSpecChanged}
	if len(kinds) != len(want) {
		t.Fatalf("events of %s: %v, want %v", name, kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("events of %s: %v, want %v", name, kinds, want)
		}
	}
	rv := page.Events[1]
	if rv.Serial != st.Keys[0].Serial || rv.Reason != "cessationOfOperation" || rv.IssuanceID == 0 ||
		rv.KeyType != certfleet.ECDSAP256 || len(rv.Actor) < 7 || rv.Actor[:6] != "token:" || rv.Remote == "" {
		t.Errorf("revoked event %+v", rv)
	}
	if w := page.Events[0]; w.Reason != "withdrawn" {
		t.Errorf("withdrawal event %+v", w)
	}
}
