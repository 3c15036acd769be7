package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/seal"
)

// mustPut requests names over the API and returns the certificate each
// landed in, which must be one and the same (the pack).
func mustPut(t *testing.T, c *httpapi.Client, names ...string) string {
	t.Helper()
	pack := ""
	for _, name := range names {
		st, err := c.PutName(t.Context(), name, nil)
		if err != nil {
			t.Fatalf("PUT %s: %v", name, err)
		}
		if pack != "" && st.Certificate != pack {
			t.Fatalf("%s in %s, want the pack %s", name, st.Certificate, pack)
		}
		pack = st.Certificate
	}
	return pack
}

// issuedWith waits until the pack's current certificate holds exactly
// names.
func issuedWith(t *testing.T, st certfleet.Store, pack string, names ...string) {
	t.Helper()
	want := strings.Join(names, ",")
	var got []string
	waitWithin(t, 60*time.Second, "never issued for "+want, func() bool {
		iss := issuedNow(t, st, pack)
		if iss == nil {
			return false
		}
		got = certfleet.IdentifierValues(iss.Identifiers)
		slices.Sort(got)
		return strings.Join(got, ",") == want
	})
}

// TestPackDelayCollectsRequests (issue 14: "requests for a pack collect
// for a configurable delay before its order, and re-packing after a
// change is also debounced"): with the default pack_delay, three names
// requested one after another while the daemon runs share one order; two
// names requested after that order was placed share the next one.
// Without the delay the first name was ordered alone the moment it was
// requested, and every later one cost an order of its own.
func TestPackDelayCollectsRequests(t *testing.T) {
	n := startReadyNet(t)
	d := n.open(t, "[api]\nlisten = \"127.0.0.1:0\"\npack_size = 5\n", "")
	if d.Config.API.PackDelay != config.DefaultPackDelay {
		t.Fatalf("pack_delay %s, want the default %s", d.Config.API.PackDelay, config.DefaultPackDelay)
	}
	addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := &httpapi.Client{BaseURL: "http://" + addr, Token: newToken(t, d, []string{"*"}, false, certfleet.PermAdmin)}
	n.run(t, d)

	pack := mustPut(t, c, "p1.example.test", "p2.example.test", "p3.example.test")
	issuedWith(t, d.Store, pack, "p1.example.test", "p2.example.test", "p3.example.test")
	if got := n.CA.NewOrders(); got != 1 {
		t.Errorf("%d orders for three names requested within the delay, want 1", got)
	}
	if j, err := d.Store.Job(t.Context(), certfleet.JobKey{Spec: pack, KeyType: certfleet.ECDSAP256}); err != nil || !j.ChangedAt.IsZero() {
		t.Errorf("after the order: ChangedAt %v (%v), want no change pending", j.ChangedAt, err)
	}

	// After the order: the next two collect for the next one.
	mustPut(t, c, "p4.example.test", "p5.example.test")
	issuedWith(t, d.Store, pack, "p1.example.test", "p2.example.test", "p3.example.test", "p4.example.test", "p5.example.test")
	if got := n.CA.NewOrders(); got != 2 {
		t.Errorf("%d orders in all, want 2 (one per burst)", got)
	}
}

// TestPackDelayAcrossInstancesAndRestart: the pack delay's window is kept
// in the store (PostgreSQL here), so names requested through two
// instances share one order, and a window opened before a restart holds
// the names requested after it.
func TestPackDelayAcrossInstancesAndRestart(t *testing.T) {
	dsn := pgtest.DSN(t)
	n := startReadyNet(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "certfleet.toml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`state = %q
state_dir = %q
[ca]
directory = %q
trusted_roots = %q
[http01]
listen = "127.0.0.1:%d"
[tlsalpn01]
listen = ""
[self_test]
resolvers = [%q]
http_port = %d
[api]
listen = "127.0.0.1:0"
pack_size = 5
pack_delay = "8s"
`, dsn, dir, n.CA.DirectoryURL(), writeRoots(t, dir, n.CA), n.HTTPPort, n.DNS.Addr(), n.HTTPPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	type instance struct {
		d    *daemon.Daemon
		api  *httpapi.Client
		stop func()
	}
	var secret string
	open := func(name string, serveHTTP bool) *instance {
		t.Helper()
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		opts := daemon.Options{StartResponders: true, Instance: name, MasterKey: seal.EncodeMasterKey(key),
			Logger: slog.New(slog.NewTextHandler(&daemontest.SyncBuffer{}, nil))}
		if !serveHTTP {
			// Only one instance answers the CA on the http-01 port; the
			// others answer from the same store on a port of their own.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			opts.HTTP01Listener = ln
		}
		d, err := daemon.Open(t.Context(), cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
		if err != nil {
			d.Close()
			t.Fatal(err)
		}
		if secret == "" {
			secret = newToken(t, d, []string{"*"}, false, certfleet.PermAdmin)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- d.Serve(ctx) }()
		in := &instance{d: d, api: &httpapi.Client{BaseURL: "http://" + addr, Token: secret}}
		in.stop = sync.OnceFunc(func() {
			cancel()
			<-done
			d.Close()
		})
		t.Cleanup(in.stop)
		return in
	}
	a, b := open("instance-a", true), open("instance-b", false)
	pack := mustPut(t, a.api, "m1.example.test")
	mustPut(t, b.api, "m2.example.test")
	mustPut(t, a.api, "m3.example.test")
	issuedWith(t, a.d.Store, pack, "m1.example.test", "m2.example.test", "m3.example.test")
	if got := n.CA.NewOrders(); got != 1 {
		t.Errorf("%d orders for names requested through two instances within the delay, want 1", got)
	}

	// m4 opens a window; every instance stops before it ends. The one
	// started after holds m5, requested after the restart, in it too.
	b.stop()
	mustPut(t, a.api, "m4.example.test")
	a.stop()
	c := open("instance-c", true)
	mustPut(t, c.api, "m5.example.test")
	issuedWith(t, c.d.Store, pack, "m1.example.test", "m2.example.test", "m3.example.test", "m4.example.test", "m5.example.test")
	if got := n.CA.NewOrders(); got != 2 {
		t.Errorf("%d orders in all, want 2 (m4 and m5 in one)", got)
	}
}
