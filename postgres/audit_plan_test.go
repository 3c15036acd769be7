package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/postgres"
	"github.com/jackc/pgx/v5"
)

// TestEventQueryPlans: with 200,000 events and fresh statistics,
// PostgreSQL answers every filter shape of certfleet audit and GET
// /v1/audit from an index of 0005_audit.sql, never a sequential scan of the
// trail.
func TestEventQueryPlans(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	c, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := c.Exec(ctx, `
		INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
		SELECT $1::timestamptz + i * interval '150 seconds',
			(ARRAY['key_read','issued','renewed','order_failed','config_changed'])[i % 5 + 1],
			CASE i % 5 WHEN 0 THEN 'token:tok_' || (i % 50) WHEN 4 THEN 'config:/etc/certfleet.toml' ELSE 'instance:host-1-abc' END,
			CASE i % 5 WHEN 0 THEN 'token' WHEN 4 THEN 'config' ELSE 'instance' END,
			'', 'cert-' || (i % 2000), 'ecdsa-p256', to_hex(i), i, '', 'plan event ' || i
		FROM generate_series(0, 199999) AS i`, base); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `ANALYZE audit_events`); err != nil {
		t.Fatal(err)
	}
	mid, old := base.Add(180*24*time.Hour), base.Add(10*24*time.Hour)
	for _, tc := range []struct {
		name string
		f    certfleet.EventFilter
	}{
		{"none", certfleet.EventFilter{}},
		{"since", certfleet.EventFilter{Since: mid}},
		{"old day", certfleet.EventFilter{Since: old, Until: old.Add(24 * time.Hour)}},
		{"page", certfleet.EventFilter{BeforeID: 100000}},
		{"certificate", certfleet.EventFilter{Certificate: "cert-42"}},
		{"certificate range page", certfleet.EventFilter{Certificate: "cert-42", Since: old, Until: mid, BeforeID: 150000}},
		{"kind", certfleet.EventFilter{Kind: certfleet.EventOrderFailed}},
		{"rare kind", certfleet.EventFilter{Kind: certfleet.EventTokenRevoked}},
		{"actor", certfleet.EventFilter{Actor: "token:tok_7"}},
		{"actor prefix", certfleet.EventFilter{Actor: "token:"}},
		{"actor prefix until", certfleet.EventFilter{Actor: "token:", Until: mid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := certfleet.CheckEventFilter(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			q, args, err := postgres.EventQueryForTest(s, ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := c.Query(ctx, "EXPLAIN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, strings.TrimSpace(line))
			}
			rows.Close()
			all := strings.Join(plan, "\n")
			t.Logf("%+v:\n%s", tc.f, all)
			if strings.Contains(all, "Seq Scan") || !strings.Contains(all, "audit_events_") {
				t.Errorf("plan for %+v scans the table instead of an index:\n%s", tc.f, all)
			}
		})
	}
}
