package ldapsource_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certfleet/certfleet/internal/slapdtest"
	"github.com/certfleet/certfleet/inventory"
	"github.com/certfleet/certfleet/inventory/ldapsource"
)

func newSource(srv *slapdtest.Server) *ldapsource.Source {
	return &ldapsource.Source{URL: srv.URL, BindDN: slapdtest.RootDN, Password: slapdtest.RootPW,
		Base: slapdtest.Domains, Filter: "(letsencrypt=TRUE)", Persist: true,
		Attributes: map[string]string{"identifiers": "associatedDomain", "name": "dc", "reuse_key": "letsencrypt"}}
}

func mustRead(t *testing.T, s *ldapsource.Source) map[string]inventory.Entry {
	t.Helper()
	es, err := s.Read(t.Context())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	out := make(map[string]inventory.Entry)
	for _, e := range es {
		out[e.Where] = e
	}
	return out
}

func TestReadMapsAttributes(t *testing.T) {
	srv := slapdtest.New(t)
	srv.Start()
	shop := srv.AddDomain("shop", "TRUE", "www.shop.example.test", "shop.example.test")
	srv.AddDomain("blog", "FALSE", "blog.example.test")
	srv.AddDomain("plain", "", "plain.example.test")
	got := mustRead(t, newSource(srv))
	if len(got) != 1 {
		t.Fatalf("entries = %v, want the one with letsencrypt=TRUE", got)
	}
	f := got[shop].Fields
	// Values sorted: LDAP values are a set, whatever order the server keeps.
	if !slices.Equal(f["identifiers"].([]any), []any{"shop.example.test", "www.shop.example.test"}) || f["name"] != "shop" || f["reuse_key"] != true {
		t.Errorf("fields = %#v", f)
	}
}

func TestReadFailures(t *testing.T) {
	srv := slapdtest.New(t)
	srv.SizeLimit = 2
	srv.Start()
	for _, n := range []string{"a", "b", "c"} {
		srv.AddDomain(n, "TRUE", n+".example.test")
	}
	tests := []struct {
		name string
		edit func(s *ldapsource.Source)
		want string
	}{
		// The root DN is exempt from limits; an anonymous reader is not:
		// three entries over a limit of two must fail, not return two.
		{"size limit", func(s *ldapsource.Source) { s.BindDN, s.Password = "", "" }, "returned only part of the entries (a size limit)"},
		{"wrong password", func(s *ldapsource.Source) { s.Password = "wrong" }, "check the source's bind_dn and password"},
		{"no such base", func(s *ldapsource.Source) { s.Base = "ou=nope," + slapdtest.Suffix }, "no such entry; check the source's base"},
		{"server down", func(s *ldapsource.Source) { s.URL = "ldap://127.0.0.1:1" }, "check that the server runs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(srv)
			tc.edit(s)
			es, err := s.Read(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read = %d entries, %v; want an error containing %q", len(es), err, tc.want)
			}
		})
	}
	if got := mustRead(t, newSource(srv)); len(got) != 3 {
		t.Errorf("the root DN read %d entries, want 3", len(got))
	}
}

// TestWatchPersistentSearch: with syncprov, a change, the filter's
// attribute removed and a delete each call changed.
func TestWatchPersistentSearch(t *testing.T) {
	srv := slapdtest.New(t)
	srv.Start()
	dn := srv.AddDomain("shop", "TRUE", "shop.example.test")
	changes := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- newSource(srv).Watch(ctx, func() {
			select {
			case changes <- struct{}{}:
			default:
			}
		})
	}()
	drain := func() {
		for {
			select {
			case <-changes:
			case <-time.After(500 * time.Millisecond):
				return
			}
		}
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case err := <-done:
			t.Fatalf("Watch ended (%v) before %s was seen", err, what)
		case <-time.After(30 * time.Second):
			t.Fatalf("no change notification for %s", what)
		}
	}
	wait("the start")
	drain()
	srv.Modify(dn, func(r *ldap.ModifyRequest) { r.Add("associatedDomain", []string{"www.shop.example.test"}) })
	wait("a changed entry")
	drain()
	srv.Modify(dn, func(r *ldap.ModifyRequest) { r.Delete("letsencrypt", nil) })
	wait("the attribute removed")
	drain()
	srv.AddDomain("new", "TRUE", "new.example.test")
	wait("an added entry")
	drain()
	srv.Delete("dc=new," + slapdtest.Domains)
	wait("a deleted entry")
	// The server stops: Watch ends with an error, for the reconciler to retry.
	srv.Stop()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Watch returned nil when the server went away; want an error (nil means: nothing to watch)")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not end when the server stopped")
	}
	cancel()
}

func TestWatchWithoutSyncprov(t *testing.T) {
	srv := slapdtest.New(t)
	srv.NoSync = true
	srv.Start()
	var log bytes.Buffer
	s := newSource(srv)
	s.Logger = slog.New(slog.NewTextHandler(&log, nil))
	if err := s.Watch(t.Context(), func() {}); err != nil {
		t.Fatalf("Watch = %v, want nil (nothing to watch)", err)
	}
	if !strings.Contains(log.String(), "offers no content synchronization") {
		t.Errorf("log = %q; want it to say why the source is only polled", log.String())
	}
}
