package selftest_test

import (
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/cutproxy"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/selftest"
	"github.com/certfleet/certfleet/solver/http01"
)

// TestHTTPProbeThroughStoreOutage: issue 16, found by BENCHMARKS §13's
// combined failover run. A self-test whose probe token could not be
// stored because the database was restarting made the name wait 30 s for
// its next self-test, though the database was back in 5; now the probe is
// stored with the solvers' retries (answers.Publish) and the name passes
// once the database is back.
func TestHTTPProbeThroughStoreOutage(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := cutproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	u.Host = proxy.Addr()
	store, err := postgres.Open(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &http01.Responder{Store: store}
	go r.Serve(t.Context(), ln)
	tester := &selftest.Tester{Store: store, HTTPPort: ln.Addr().(*net.TCPAddr).Port, Timeout: 20 * time.Second}

	proxy.Cut()
	time.AfterFunc(time.Second, func() { _ = proxy.Restore() })
	spec := certfleet.CertificateSpec{Name: "probe", Challenge: certfleet.ChallengeHTTP01}
	res, err := tester.SelfTest(t.Context(), spec, []certfleet.Identifier{{Type: certfleet.IdentifierIP, Value: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].OK() {
		t.Errorf("self-test through a 1 s database cut: %+v, want it to pass once the database is back", res)
	}
}
