package sqlite

import (
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
)

// TestTermsMigrationMatchesStore: the search terms 0021 computes in SQL for
// the specs a database already holds are those the store writes with each
// spec (certfleet.SearchTerms), so a search finds the same before and after
// a certificate is next changed.
func TestTermsMigrationMatchesStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	dns := func(vs ...string) []certfleet.Identifier {
		var ids []certfleet.Identifier
		for _, v := range vs {
			ids = append(ids, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: v})
		}
		return ids
	}
	for _, sp := range []certfleet.CertificateSpec{
		{Name: "Shop.Web", Identifiers: dns("www.shop.example.com", "shop.example.com"), Challenge: certfleet.ChallengeHTTP01},
		{Name: "wild", Identifiers: dns("*.a.example.net", "a.example.net"), Challenge: certfleet.ChallengeDNS01},
		{Name: "ip", Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierIP, Value: "192.0.2.7"}}, Challenge: certfleet.ChallengeHTTP01},
		{Name: "gone", Identifiers: dns("gone.example.org"), Challenge: certfleet.ChallengeHTTP01},
	} {
		sp.KeyTypes, sp.Source = []certfleet.KeyType{certfleet.ECDSAP256}, certfleet.SourceAPI
		if _, err := s.PutSpec(t.Context(), sp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WithdrawSpec(t.Context(), "gone", false); err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	terms := func() []string {
		t.Helper()
		rows, err := db.Query(`SELECT spec || ' ' || term FROM spec_terms ORDER BY spec, term`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	written := terms()
	if !slices.Contains(written, "Shop.Web shop") || !slices.Contains(written, "wild a.example.net") || slices.ContainsFunc(written, func(s string) bool { return strings.HasPrefix(s, "gone ") }) {
		t.Fatalf("terms the store wrote: %q", written)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m sqlstore.Migration) bool { return m.Version == 21 })
	fill := ms[i].SQL[strings.Index(ms[i].SQL, "WITH RECURSIVE"):]
	if _, err := db.Exec(`DELETE FROM spec_terms`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fill); err != nil {
		t.Fatal(err)
	}
	if got := terms(); !slices.Equal(got, written) {
		t.Fatalf("terms of the migration:\n%q\nthe store writes:\n%q", got, written)
	}
}
