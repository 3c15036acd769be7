package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// BenchmarkCertificateList is the cost of a GET /v1/certificates page of
// 100 and of 1,000 certificates (issue 13: limit=1000 pages were 54–126 ms
// p50 at 100,000 certificates), store read included, over a SQLite file,
// without the network:
//
//	go test -run '^$' -bench CertificateList -benchmem ./httpapi/
func BenchmarkCertificateList(b *testing.B) {
	ctx := b.Context()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "certfleet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.SyncSpecs(ctx, certfleet.SourceConfig, storetest.NewSpecs("s", 3000)); err != nil {
		b.Fatal(err)
	}
	id, secret, hash := certfleet.NewTokenSecret()
	if err := st.CreateToken(ctx, certfleet.Token{ID: id, Names: []string{"*"}, Permissions: []certfleet.Permission{certfleet.PermAdmin}, Hash: hash}); err != nil {
		b.Fatal(err)
	}
	h := (&httpapi.Server{Store: st}).Handler()
	for _, limit := range []string{"100", "1000"} {
		b.Run("limit="+limit, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/v1/certificates?after=s-000500&limit="+limit, nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			size := 0
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "B/page")
		})
	}
}
