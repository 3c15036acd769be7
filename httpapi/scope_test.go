package httpapi_test

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
)

// TestPacksKeepScopes is issue 12's second finding: with pack_size 5, a
// token for *.a.example and one for *.b.example each request a name. They
// used to land in one certificate with one key, so each customer could
// read the key serving the other's name. A pack never crosses the token
// pattern that covers its names: each gets a certificate of its own, reads
// its own key, and cannot read the other's.
func TestPacksKeepScopes(t *testing.T) {
	e := newEnv(t, 5)
	ctx := t.Context()
	perms := []certfleet.Permission{certfleet.PermRequestNames, certfleet.PermReadKeys}
	a := e.client(e.token([]string{"*.a.example"}, false, perms...))
	b := e.client(e.token([]string{"*.b.example"}, false, perms...))
	if _, err := a.PutName(ctx, "x.a.example", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutName(ctx, "y.b.example", nil); err != nil {
		t.Fatal(err)
	}
	sa, err := a.WaitIssued(ctx, "x.a.example")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.WaitIssued(ctx, "y.b.example")
	if err != nil {
		t.Fatal(err)
	}
	if sa.Certificate == sb.Certificate || len(sa.Identifiers) != 1 || len(sb.Identifiers) != 1 {
		t.Fatalf("x.a.example in %s %v, y.b.example in %s %v: want a certificate each", sa.Certificate, sa.Identifiers, sb.Certificate, sb.Identifiers)
	}
	for _, c := range []struct {
		cl         *httpapi.Client
		own, other string
	}{{a, "x.a.example", "y.b.example"}, {b, "y.b.example", "x.a.example"}} {
		key, err := c.cl.Fetch(ctx, c.own, "privkey", httpapi.FetchOptions{})
		if err != nil {
			t.Fatalf("%s's own key: %v", c.own, err)
		}
		full, err := c.cl.Fetch(ctx, c.own, "fullchain", httpapi.FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(full.Data, key.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := pair.Leaf.VerifyHostname(c.other); err == nil {
			t.Errorf("the key %s's token reads also serves %s", c.own, c.other)
		}
		var p *httpapi.Problem
		if _, err := c.cl.Fetch(ctx, c.other, "privkey", httpapi.FetchOptions{}); !errors.As(err, &p) || p.Status != 403 {
			t.Errorf("the other customer's key %s: %v, want 403", c.other, err)
		}
	}
	// Names within one pattern still share a pack.
	if _, err := a.PutName(ctx, "y.a.example", nil); err != nil {
		t.Fatal(err)
	}
	st, err := a.WaitIssued(ctx, "y.a.example")
	if err != nil || st.Certificate != sa.Certificate || len(st.Identifiers) != 2 {
		t.Fatalf("y.a.example: %+v, %v; want it packed with x.a.example in %s", st, err, sa.Certificate)
	}
}
