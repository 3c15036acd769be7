package benchdb_test

import (
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/benchdb"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
)

// syncOne attaches a store to db and syncs one spec: a write the store
// makes in one transaction.
func syncOne(t *testing.T, db sqlstore.DB) {
	t.Helper()
	store := &sqlstore.Store{}
	if err := store.Attach(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	spec := certfleet.CertificateSpec{Name: "a", KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256},
		Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceConfig,
		Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: "a.example.test"}}}
	if _, err := store.SyncSpecs(t.Context(), certfleet.SourceConfig, []certfleet.CertificateSpec{spec}); err != nil {
		t.Fatal(err)
	}
}

func TestCountSQLite(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, c := benchdb.Count(s.DB())
	if _, ok := db.(sqlstore.Autocommitter); ok {
		t.Error("Count made an Autocommitter of SQLite's DB, which is none")
	}
	w0, st0 := c.Writes(), c.Statements()
	syncOne(t, db)
	if w, st := c.Writes()-w0, c.Statements()-st0; w < 1 || st < w {
		t.Errorf("SyncSpecs counted %d write transactions and %d statements; want at least one, with a statement each", w, st)
	}
}

func TestNewSchemaAndCountPostgres(t *testing.T) {
	dsn, drop, err := benchdb.NewSchema(t.Context(), pgtest.ServerDSN(t), "benchdbtest")
	if err != nil {
		t.Fatal(err)
	}
	defer drop()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, c := benchdb.Count(s.DB())
	if _, ok := db.(sqlstore.Autocommitter); !ok {
		t.Error("Count hid PostgreSQL's Autocommitter: the store would take another path")
	}
	w0, st0 := c.Writes(), c.Statements()
	syncOne(t, db)
	if w, st := c.Writes()-w0, c.Statements()-st0; w < 1 || st < w {
		t.Errorf("SyncSpecs counted %d write transactions and %d statements; want at least one, with a statement each", w, st)
	}
}
