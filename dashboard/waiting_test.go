package dashboard_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

// TestWaitingNames (issue 14): a certificate's page shows its names that
// wait for their self-test, with the reason in words and the next test.
func TestWaitingNames(t *testing.T) {
	sp := storetest.NewSpec("web")
	e := newEnv(t, sp)
	now := time.Now()
	if err := e.store.SetWaiting(t.Context(), sp.Name, []certfleet.WaitingName{{Spec: sp.Name, Identifier: sp.Identifiers[0],
		Challenge: certfleet.ChallengeHTTP01, Code: certfleet.WaitDNS, Reason: "web.example.org resolves to 198.51.100.7, not to us",
		Since: now.Add(-time.Hour), CheckedAt: now, NextAt: now.Add(time.Minute), Tests: 4}}, nil); err != nil {
		t.Fatal(err)
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	r := e.do("GET", "/dashboard/cert/web", e.login(secret), nil, nil)
	for _, want := range []string{"Waiting names", `data-reason="dns"`, "resolves to 198.51.100.7, not to us", "<td>4</td>"} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("certificate page lacks %q:\n%s", want, r.body)
		}
	}
}
