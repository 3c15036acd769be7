package sqlstore_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/dashboard"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/certfleet/certfleet/status"
)

// BenchmarkFailingPages is the cost of the listing pages whose rows all
// need their extras (issue 13): a page of 100 failing certificates through
// the API, one of 50 on the dashboard, and the status table of 2,000, on
// a SQLite file and on PostgreSQL (CERTFLEET_TEST_POSTGRES), with the
// statements each costs. Run it on the commit before ListingExtras and on
// this one, alternately, for the ratio at the same load:
//
//	go test -run '^$' -bench FailingPages -count 3 ./sqlstore/
func BenchmarkFailingPages(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchFailingPages(b, s.DB())
	})
	b.Run("postgres", func(b *testing.B) {
		s, err := postgres.Open(b.Context(), pgtest.DSN(b))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchFailingPages(b, s.DB())
	})
}

func benchFailingPages(b *testing.B, db sqlstore.DB) {
	ctx := b.Context()
	var n atomic.Int64
	s := newCountingStore(b, db, &n)
	extrasFleet(b, s, 2000)
	id, secret, hash := certfleet.NewTokenSecret()
	if err := s.CreateToken(ctx, certfleet.Token{ID: id, Names: []string{"*"}, Permissions: []certfleet.Permission{certfleet.PermAdmin}, Hash: hash, CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	api := httptest.NewServer((&httpapi.Server{Store: s}).Handler())
	defer api.Close()
	ds := httptest.NewServer((&dashboard.Server{Store: s}).Handler())
	defer ds.Close()
	cookie := login(b, ds.URL, secret)
	get := func(u string, h http.Header) {
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
	}
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"api-failing-100", func() {
			get(api.URL+"/v1/certificates?failing=true&after=s-000300", http.Header{"Authorization": {"Bearer " + secret}})
		}},
		{"dashboard-failing-50", func() { get(ds.URL+"/dashboard/?status=failing&after=s-000300", http.Header{"Cookie": {cookie}}) }},
		{"status-table-2000", func() {
			if err := status.Certificates(ctx, io.Discard, s, false, time.Now()); err != nil {
				b.Fatal(err)
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			n.Store(0)
			for b.Loop() {
				c.fn()
			}
			b.ReportMetric(float64(n.Load())/float64(b.N), "stmts/op")
		})
	}
}
