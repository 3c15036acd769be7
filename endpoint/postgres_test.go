package endpoint_test

import (
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/endpoint"
	"github.com/certfleet/certfleet/internal/pgtest"
)

// TestCheckRealPostgres checks the real PostgreSQL server of the test suite
// (CERTFLEET_TEST_POSTGRES) through SSLRequest, and compares the certificate
// read with the server's ssl_cert_file when that file is on this machine.
func TestCheckRealPostgres(t *testing.T) {
	dsn := pgtest.ServerDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", u.Host, err)
	}
	defer conn.Close(t.Context())
	var ssl, certFile string
	if err := conn.QueryRow(t.Context(), "SELECT current_setting('ssl'), current_setting('ssl_cert_file')").Scan(&ssl, &certFile); err != nil {
		t.Fatal(err)
	}
	target := endpoint.Target{Address: u.Host, Protocol: endpoint.ProtocolPostgres, ServerName: "localhost"}
	res, err := (&endpoint.Checker{}).Check(t.Context(), target)
	if ssl != "on" {
		if err == nil {
			t.Fatalf("ssl = %s on the server, yet the check read a certificate", ssl)
		}
		t.Skipf("SKIPPING: the test PostgreSQL server has ssl = %s (check said: %v)", ssl, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s serves serial %s, subject %s, verified %v (%s), in %v", target, res.Serial, res.Leaf.Subject, res.ChainVerified, res.VerifyError, res.Duration)
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Logf("ssl_cert_file %s is not readable here (%v): fingerprint not compared", certFile, err)
		return
	}
	certs, err := certfleet.ParseChain(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Fingerprint, certfleet.Fingerprint(certs[0]); got != want {
		t.Errorf("served fingerprint %s, ssl_cert_file %s has %s", got, certFile, want)
	}
}
