package pgsource_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/inventory/pgsource"
)

const table = `CREATE TABLE customer_domains (
	id      serial PRIMARY KEY,
	domain  text NOT NULL,
	aliases text[] NOT NULL DEFAULT '{}',
	tls     boolean NOT NULL DEFAULT true,
	keytype text,
	margin  interval
)`

const query = `SELECT id, domain AS name, array_prepend(domain, aliases) AS identifiers, keytype AS key_types, margin AS renew_before
	FROM customer_domains WHERE tls ORDER BY id`

// newDB returns a DSN of a fresh schema holding customer_domains with the
// shipped trigger installed, and a connection to it.
func newDB(t *testing.T, channel string) (string, *pgx.Conn) {
	t.Helper()
	dsn := pgtest.DSN(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), table); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), pgsource.TriggerSQL("customer_domains", channel)); err != nil {
		t.Fatalf("install the shipped trigger: %v", err)
	}
	return dsn, conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func channel() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "certfleet_test_" + hex.EncodeToString(b)
}

func TestRead(t *testing.T) {
	dsn, conn := newDB(t, channel())
	exec(t, conn, `INSERT INTO customer_domains (domain, aliases, keytype, margin) VALUES
		('shop.example.test', '{www.shop.example.test}', 'rsa2048', '20 days'),
		('blog.example.test', '{}', NULL, NULL)`)
	exec(t, conn, `INSERT INTO customer_domains (domain, tls) VALUES ('off.example.test', false)`)
	s := &pgsource.Source{DSN: dsn, Query: query}
	es, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 {
		t.Fatalf("entries = %+v, want 2", es)
	}
	shop, blog := es[0], es[1]
	if shop.Where != "row id=1" || shop.Fields["name"] != "shop.example.test" ||
		!slices.Equal(shop.Fields["identifiers"].([]any), []any{"shop.example.test", "www.shop.example.test"}) ||
		!slices.Equal(shop.Fields["key_types"].([]any), []any{"rsa2048"}) || shop.Fields["renew_before"] != (20*24*time.Hour).String() {
		t.Errorf("shop = %+v", shop)
	}
	// NULL columns are left out, so that the source's defaults apply.
	if _, set := blog.Fields["key_types"]; set || blog.Where != "row id=2" {
		t.Errorf("blog = %+v", blog)
	}
}

func TestReadFailures(t *testing.T) {
	dsn, _ := newDB(t, channel())
	tests := []struct {
		name string
		src  pgsource.Source
		want string
	}{
		{"unknown column", pgsource.Source{DSN: dsn, Query: `SELECT domain AS name, domain AS host FROM customer_domains`},
			`the query returns a column "host", which is not a certificate key`},
		{"query error", pgsource.Source{DSN: dsn, Query: `SELECT nope FROM customer_domains`}, "check it with psql"},
		{"read only", pgsource.Source{DSN: dsn, Query: `DELETE FROM customer_domains RETURNING domain AS name`}, "cannot execute DELETE in a read-only transaction"},
		{"server down", pgsource.Source{DSN: "postgres://certfleet@127.0.0.1:1/x?connect_timeout=5", Query: query}, "check that it runs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.src.Read(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A password given apart from the DSN is never in an error.
	s := pgsource.Source{DSN: "postgres://certfleet@127.0.0.1:1/x?connect_timeout=5", Password: "hunter2", Query: query}
	if _, err := s.Read(t.Context()); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Read = %v", err)
	}
}

// TestWatchNotify: the shipped trigger's notifications reach Watch for an
// insert, an update and a delete.
func TestWatchNotify(t *testing.T) {
	ch := channel()
	dsn, conn := newDB(t, ch)
	changes := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- (&pgsource.Source{DSN: dsn, Query: query, Channel: ch}).Watch(ctx, func() { changes <- struct{}{} })
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case err := <-done:
			t.Fatalf("Watch ended (%v) before %s", err, what)
		case <-time.After(30 * time.Second):
			t.Fatalf("no notification for %s", what)
		}
	}
	wait("the start")
	exec(t, conn, `INSERT INTO customer_domains (domain) VALUES ('a.example.test')`)
	wait("an insert")
	exec(t, conn, `UPDATE customer_domains SET aliases = '{www.a.example.test}'`)
	wait("an update")
	exec(t, conn, `DELETE FROM customer_domains`)
	wait("a delete")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch after cancel = %v, want nil", err)
	}
	if err := (&pgsource.Source{DSN: dsn}).Watch(t.Context(), func() {}); err != nil {
		t.Errorf("Watch without a channel = %v, want nil (nothing to watch)", err)
	}
}
