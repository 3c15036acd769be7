package httpapi_test

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/identity"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
)

// TestIdentityRevokedOnPair: two certfleet API instances on one PostgreSQL
// database (each its own store pool, Authority and TLS listener, as two
// daemons have) serve a host identity enrolled on the first; revoked from
// a third connection (certfleet identity revoke on an operator's machine),
// it is refused on both within a second — on a new handshake and on a
// connection it already had open — through the store's notification, not
// the fallback re-read (30 s).
func TestIdentityRevokedOnPair(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := t.Context()
	open := func() *postgres.Store {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	var servers []*idServer
	for range 2 {
		st := open()
		auth := &identity.Authority{Store: st, Events: st}
		startAuthority(t, auth)
		servers = append(servers, newIDServer(t, (&httpapi.Server{Store: st, Identities: auth}).Handler(), auth))
	}
	admin := &identity.Authority{Store: open()}
	cert, iss := servers[0].mustEnroll(mustEnrollToken(t, admin, identity.EnrollRequest{Names: []string{"*.pair.test"}}), "web1")
	open1 := make([]*httpapi.Client, 2)
	for i, s := range servers {
		open1[i] = s.client(&cert)
		if _, err := open1[i].Certificates(ctx, "", 10); err != nil {
			t.Fatalf("instance %d before revocation: %v", i+1, err)
		}
	}
	if _, err := admin.Revoke(ctx, iss.Identity, "cli:test", ""); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for i, s := range servers {
		for _, how := range []string{"open connection", "new handshake"} {
			for {
				c := open1[i]
				if how == "new handshake" {
					c = s.client(&cert)
				}
				_, err := c.Certificates(ctx, "", 10)
				if err != nil {
					t.Logf("instance %d, %s: refused %s after the revocation: %v", i+1, how, time.Since(revoked).Round(time.Millisecond), err)
					break
				}
				if time.Since(revoked) > time.Second {
					t.Fatalf("instance %d, %s: the revoked identity is still served %s after the revocation", i+1, how, time.Since(revoked))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}
