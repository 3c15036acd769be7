package sqlite_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// BenchmarkEvents reads one page (100) of the audit trail per filter shape
// from a table of CERTFLEET_BENCH_EVENTS events (default 1,000,000: 10,000
// certificates, 50 tokens, a year of history), the sizes issue 6 asks to
// stay fast at. Building the table takes a while; the reads are what is
// measured.
func BenchmarkEvents(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("CERTFLEET_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("CERTFLEET_BENCH_EVENTS=%q: %v", v, err)
		}
	}
	s := newTestStore(b)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	step := int64(365*24*time.Hour/time.Microsecond) / int64(n) // events spread over a year
	start := time.Now()
	// Every 5th event a key read by one of 50 tokens, the rest the
	// scheduler's and the config's; a certificate every 100th event.
	_, err := rawDB(b, s.Path).ExecContext(b.Context(), `
		WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ?)
		INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
		SELECT ? + i * ?,
			CASE i % 5 WHEN 0 THEN 'key_read' WHEN 1 THEN 'issued' WHEN 2 THEN 'renewed' WHEN 3 THEN 'order_failed' ELSE 'config_changed' END,
			CASE i % 5 WHEN 0 THEN 'token:tok_' || (i % 50) WHEN 4 THEN 'config:/etc/certfleet.toml' ELSE 'instance:host-1-abc' END,
			CASE i % 5 WHEN 0 THEN 'token' WHEN 4 THEN 'config' ELSE 'instance' END,
			CASE i % 5 WHEN 0 THEN '10.0.0.' || (i % 250) || ':443' ELSE '' END,
			'cert-' || (i % 10000), 'ecdsa-p256', printf('%x', i), i, '', 'benchmark event ' || i
		FROM c`, n, base.UnixMicro(), step)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events inserted in %s", n, time.Since(start).Round(time.Millisecond))
	mid := base.Add(180 * 24 * time.Hour)
	old := base.Add(10 * 24 * time.Hour)
	for _, bc := range []struct {
		name string
		f    certfleet.EventFilter
	}{
		{"newest", certfleet.EventFilter{}},
		{"certificate", certfleet.EventFilter{Certificate: "cert-4242"}},
		{"certificate/old-range", certfleet.EventFilter{Certificate: "cert-4242", Since: old, Until: old.Add(30 * 24 * time.Hour)}},
		{"kind", certfleet.EventFilter{Kind: certfleet.EventOrderFailed}},
		{"actor", certfleet.EventFilter{Actor: "token:tok_7"}},
		{"actor-prefix", certfleet.EventFilter{Actor: "token:"}},
		{"actor-prefix/until-mid", certfleet.EventFilter{Actor: "token:", Until: mid}},
		{"time-range/old-day", certfleet.EventFilter{Since: old, Until: old.Add(24 * time.Hour)}},
		{"rare-kind", certfleet.EventFilter{Kind: certfleet.EventTokenRevoked}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			first, err := s.Events(b.Context(), bc.f)
			if err != nil {
				b.Fatal(err)
			}
			next := bc.f
			if len(first) > 0 {
				next.BeforeID = first[len(first)-1].ID // page 2, as a client pages
			}
			b.ResetTimer()
			for range b.N {
				if _, err := s.Events(b.Context(), next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
