package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestAuditMigrationKeepsKeyReads: a database of schema 4 (before the
// audit trail) with logged key reads is migrated, and every read is in
// the trail as a key_read event, in order, with its token and address.
func TestAuditMigrationKeepsKeyReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > 4 {
			break
		}
		if _, err := db.Exec(m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	for i, tok := range []string{"tok_a", "tok_b", "tok_a"} {
		if _, err := db.Exec(`INSERT INTO key_reads (token_id, spec, key_type, issuance_id, serial, remote, at) VALUES (?, 'web', 'ecdsa-p256', ?, 'ab', ?, ?)`,
			tok, i+1, "192.0.2.1:100"+string(rune('0'+i)), at.Add(time.Duration(i)*time.Second).UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, err := s.Events(t.Context(), certfleet.EventFilter{Kind: certfleet.EventKeyRead})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d key_read events after migrating, want 3: %+v", len(evs), evs)
	}
	for i, e := range evs { // newest first
		n := 2 - i
		want := certfleet.Event{ID: e.ID, At: at.Add(time.Duration(n) * time.Second), Kind: certfleet.EventKeyRead,
			Actor: "token:" + []string{"tok_a", "tok_b", "tok_a"}[n], Remote: "192.0.2.1:100" + string(rune('0'+n)),
			Certificate: "web", KeyType: certfleet.ECDSAP256, Serial: "ab", IssuanceID: int64(n + 1)}
		if e != want {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, e, want)
		}
	}
}
