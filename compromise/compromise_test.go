package compromise_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/compromise"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/sqlite"
)

// TestRunBadTarget: a target that names no key is a BadTarget error, and
// nothing is done: no key blocked, no event recorded. The CLI maps the kind
// to exit 2 (cmd/certfleet's compromise tests).
func TestRunBadTarget(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ids, err := certfleet.ParseIdentifiers([]string{"web.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	spec := certfleet.CertificateSpec{Name: "web", Identifiers: ids, KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01}
	if _, err := store.SyncSpecs(t.Context(), certfleet.SourceConfig, []certfleet.CertificateSpec{spec}); err != nil {
		t.Fatal(err)
	}
	var recorded []certfleet.Event
	p := &compromise.Playbook{
		Store:   store,
		Config:  func() *config.Config { return &config.Config{} },
		Revoker: func(string) compromise.Revoker { return nil },
		Record:  func(_ context.Context, e certfleet.Event) { recorded = append(recorded, e) },
	}
	for _, tc := range []struct{ name, target, want string }{
		{"certificate without a certificate yet", "web", `certificate "web" has no certificate yet`},
		{"neither a name nor a key ID", "nope", "is neither a certificate name in the store nor a key ID"},
		{"key ID of no archived certificate", "0123456789abcdef", `no certificate in the archive has a key whose ID starts with "0123456789abcdef"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Run(t.Context(), tc.target, compromise.Options{NoWait: true})
			var ce *compromise.Error
			if !errors.As(err, &ce) || ce.Kind != compromise.BadTarget || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run(%q) = %v; want a BadTarget error with %q", tc.target, err, tc.want)
			}
		})
	}
	if len(recorded) != 0 {
		t.Errorf("events recorded for targets that name no key: %+v", recorded)
	}
	if blocked, err := store.BlockedKeys(t.Context()); err != nil || len(blocked) != 0 {
		t.Errorf("blocked keys = %v, %v; want none", blocked, err)
	}
}
