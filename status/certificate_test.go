package status_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/status"
	"github.com/certfleet/certfleet/storetest"
)

// TestStatusPagesAndOne (issue 13): the table lists every certificate
// across pages (more than one page of them), and status NAME shows one,
// found by its name or by one of its identifiers.
func TestStatusPagesAndOne(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	specs := storetest.NewSpecs("s", 1203)
	specs[7].Identifiers = append(specs[7].Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "www.seven.example"})
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := status.Certificates(ctx, &b, store, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 1+len(specs) || !strings.HasPrefix(lines[1], "s-000000 ") || !strings.HasPrefix(lines[len(lines)-1], "s-001202 ") {
		t.Fatalf("table: %d lines, first %q, last %q", len(lines), lines[1], lines[len(lines)-1])
	}
	for _, name := range []string{"s-000007", "www.seven.example", "S-000007.example.org"} {
		b.Reset()
		if err := status.Certificate(ctx, &b, store, name, time.Now()); err != nil {
			t.Fatalf("status %s: %v", name, err)
		}
		for _, want := range []string{"Certificate:", "s-000007 (active, source config)", "s-000007.example.org, www.seven.example", "ecdsa-p256:", "none yet"} {
			if !strings.Contains(b.String(), want) {
				t.Fatalf("status %s lacks %q:\n%s", name, want, b.String())
			}
		}
	}
	if err := status.Certificate(ctx, &b, store, "nothing.example", time.Now()); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("status of an unknown name: %v, want ENOTFOUND", err)
	}
}
