package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// BenchmarkScrape100k scrapes a SQLite store holding 100,000 issued
// certificates (one current issuance each, through the store's own
// CompleteIssuance) and 1,000 agent reports: "http" is a whole GET /metrics
// read to the end (store queries, readiness, exposition, gzip as
// Prometheus asks for it), "store" the three queries alone, "gather" the
// registry's Gather without HTTP or encoding, and "reference" the same
// number of series with the same labels from a plain client_golang registry
// of constant gauges (no store, nothing computed): the floor of exposing
// this many series, against which "http" is reported as a ratio. Run:
//
//	go test -count=1 -run '^$' -bench Scrape100k -benchtime 10x -timeout 20m ./metrics
func BenchmarkScrape100k(b *testing.B) {
	const n = 100_000
	ctx := b.Context()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "certfleet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	start := time.Now()
	specs := storetest.NewSpecs("bench", n)
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		b.Fatal(err)
	}
	bySpec := make(map[string]certfleet.CertificateSpec, n)
	for _, sp := range specs {
		bySpec[sp.Name] = sp
	}
	for issued := 0; issued < n; {
		jobs, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: time.Now(), Lease: time.Hour, Limit: 1000})
		if err != nil || len(jobs) == 0 {
			b.Fatalf("ClaimDue after %d: %d jobs, %v", issued, len(jobs), err)
		}
		for _, j := range jobs {
			iss := storetest.NewIssuance(bySpec[j.Spec], j.KeyType)
			if _, err := store.CompleteIssuance(ctx, "bench", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(30 * 24 * time.Hour)},
				certfleet.Attempt{Instance: "bench", Outcome: certfleet.OutcomeIssued}); err != nil {
				b.Fatal(err)
			}
			issued++
		}
	}
	for k := range 1000 {
		if err := store.PutAgentReport(ctx, certfleet.AgentReport{Agent: fmt.Sprintf("host%03d", k%100), Certificate: specs[k].Name,
			KeyType: certfleet.ECDSAP256, Serial: "01", Fingerprint: "old", ReportedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("filled the store with %d issued certificates and 1,000 agent reports in %s", n, time.Since(start).Round(time.Second))

	m := metrics.New(metrics.Options{Store: store, Fleet: store})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	b.Run("http", func(b *testing.B) {
		var size int64
		for b.Loop() {
			resp, err := http.Get(srv.URL + "/metrics")
			if err != nil {
				b.Fatal(err)
			}
			size, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("scrape: %d, %v", resp.StatusCode, err)
			}
		}
		b.ReportMetric(float64(size)/1e6, "MB/scrape")
	})
	b.Run("reference", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		notAfter := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reference_not_after_timestamp_seconds", Help: "reference"}, []string{"certificate", "key_type"})
		notBefore := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "reference_not_before_timestamp_seconds", Help: "reference"}, []string{"certificate", "key_type"})
		reg.MustRegister(notAfter, notBefore)
		now := float64(time.Now().Unix())
		for _, sp := range specs {
			notAfter.WithLabelValues(sp.Name, string(certfleet.ECDSAP256)).Set(now + 90*86400)
			notBefore.WithLabelValues(sp.Name, string(certfleet.ECDSAP256)).Set(now)
		}
		ref := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		defer ref.Close()
		var size int64
		for b.Loop() {
			resp, err := http.Get(ref.URL)
			if err != nil {
				b.Fatal(err)
			}
			size, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("reference scrape: %d, %v", resp.StatusCode, err)
			}
		}
		b.ReportMetric(float64(size)/1e6, "MB/scrape")
	})
	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.JobStats(ctx, time.Now()); err != nil {
				b.Fatal(err)
			}
			certs, err := store.CurrentCertificates(ctx, certfleet.CurrentFilter{})
			if err != nil || len(certs) != n {
				b.Fatalf("CurrentCertificates: %d, %v", len(certs), err)
			}
			if _, err := store.AgentReports(ctx, certfleet.AgentReportFilter{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gather", func(b *testing.B) {
		series := 0
		for b.Loop() {
			fams, err := m.Registry().Gather()
			if err != nil {
				b.Fatal(err)
			}
			series = 0
			for _, f := range fams {
				series += len(f.GetMetric())
			}
		}
		if series < 2*n {
			b.Fatalf("%d series, want at least %d", series, 2*n)
		}
		b.ReportMetric(float64(series), "series")
	})
}
