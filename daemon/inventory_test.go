package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/internal/slapdtest"
	"github.com/certfleet/certfleet/inventory/pgsource"
)

// offsetClock is real time plus an offset the test moves forward: the
// scheduler keeps working (jobs the store dates by real time are due), and
// a grace period can pass without the test waiting for it.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }
func (c *offsetClock) opts() func() time.Time  { return c.Now }
func logTo(w *daemontest.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serveInventory opens and serves the daemon of the config at path until
// the test ends.
func serveInventory(t *testing.T, path string, clock *offsetClock, log *daemontest.SyncBuffer) *daemon.Daemon {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true, Now: clock.opts(), Logger: logTo(log)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("Serve: %v", err)
		}
		d.Close()
	})
	return d
}

// waitFor polls cond until it holds; the deadline only keeps a broken
// build from hanging (nothing here is timed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// issued returns the identifiers of name's current certificate, nil when
// there is none.
func issued(t *testing.T, st certfleet.Store, name string) []string {
	t.Helper()
	j, err := st.Job(t.Context(), certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256})
	if err != nil || j.CurrentID == 0 {
		return nil
	}
	iss, err := st.Issuance(t.Context(), j.CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, id := range iss.Identifiers {
		ids = append(ids, id.Value)
	}
	slices.Sort(ids)
	return ids
}

func enabledSpec(t *testing.T, st certfleet.Store, name string) bool {
	t.Helper()
	sp, err := st.Spec(t.Context(), name)
	return err == nil && !sp.Disabled
}

func pendingOf(t *testing.T, st certfleet.Store, source string) map[string]time.Time {
	t.Helper()
	p, err := st.PendingWithdrawals(t.Context(), source)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInventoryDirectoryEndToEnd: a conf.d directory through Pebble: a
// team's file issued and written where the source's defaults say, an edit
// re-issued, an invalid certificate reported with its file and line while
// the others are issued, a removed file withdrawn only after the grace.
func TestInventoryDirectoryEndToEnd(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	confd := filepath.Join(dir, "conf.d")
	os.Mkdir(confd, 0o755)
	path := daemontest.WriteConfig(t, dir, ca, port, `
[inventory.teams]
type = "directory"
dir = "conf.d"
poll_interval = "50ms"
interval = "1h"
grace = "1h"
[inventory.teams.defaults]
output_dir = "teams-live"
`)
	web := filepath.Join(confd, "web.toml")
	os.WriteFile(web, []byte("[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\"]\n"), 0o644)
	clock, log := &offsetClock{}, &daemontest.SyncBuffer{}
	d := serveInventory(t, path, clock, log)

	waitFor(t, "web issued", func() bool { return issued(t, d.Store, "web") != nil })
	waitFor(t, "web written to the source's output_dir", func() bool {
		_, err := os.Stat(filepath.Join(dir, "teams-live", "web", "fullchain.pem"))
		return err == nil
	})

	// An edit: a second name for web, and a second team's file with an
	// invalid certificate beside a valid one.
	os.WriteFile(web, []byte("[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\", \"www.certfleet.test\"]\n"), 0o644)
	os.WriteFile(filepath.Join(confd, "api.toml"), []byte("[[certificate]]\nname = \"api\"\nidentifiers = [\"api.certfleet.test\"]\n\n[[certificate]]\nname = \"bad\"\nidentifiers = [\"bad.certfleet.test\"]\nkey_types = [\"ed25519\"]\n"), 0o644)
	waitFor(t, "web re-issued with both names", func() bool {
		return slices.Equal(issued(t, d.Store, "web"), []string{"web.certfleet.test", "www.certfleet.test"})
	})
	waitFor(t, "api issued", func() bool { return issued(t, d.Store, "api") != nil })
	if want := filepath.Join(confd, "api.toml") + `:8: certificate[1].key_types[0]: unknown key type`; !strings.Contains(log.String(), want) {
		t.Errorf("the invalid certificate was not reported as %q:\n%s", want, log.String())
	}
	if _, err := d.Store.Spec(t.Context(), "bad"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Errorf("the invalid certificate reached the store: %v", err)
	}

	// The team removes its file: pending, still in force, until the grace
	// is over; then withdrawn, never revoked.
	os.Remove(filepath.Join(confd, "api.toml"))
	waitFor(t, "api pending withdrawal", func() bool { return !pendingOf(t, d.Store, "inventory:teams")["api"].IsZero() })
	if !enabledSpec(t, d.Store, "api") {
		t.Fatal("api was withdrawn at once; want it kept for the grace")
	}
	clock.Advance(61 * time.Minute)
	d.Reconcilers()[0].Wake()
	waitFor(t, "api withdrawn after the grace", func() bool { return !enabledSpec(t, d.Store, "api") })
	if !enabledSpec(t, d.Store, "web") {
		t.Error("web was withdrawn with api")
	}
}

// TestInventoryPostgresEndToEnd: rows of an operator's table through
// Pebble. The source is re-read only hourly, so the new row is seen, and
// issued, because of the shipped trigger's NOTIFY.
func TestInventoryPostgresEndToEnd(t *testing.T) {
	dsn := pgtest.DSN(t)
	db, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	channel := fmt.Sprintf("certfleet_e2e_%d", time.Now().UnixNano())
	for _, sql := range []string{
		`CREATE TABLE customer_domains (id serial PRIMARY KEY, domain text NOT NULL, aliases text[] NOT NULL DEFAULT '{}', tls boolean NOT NULL DEFAULT true)`,
		pgsource.TriggerSQL("customer_domains", channel),
		`INSERT INTO customer_domains (domain) VALUES ('first.certfleet.test')`,
	} {
		if _, err := db.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[inventory.customers]
type = "postgres"
dsn = %q
query = "SELECT id, replace(domain, '.', '-') AS name, array_prepend(domain, aliases) AS identifiers FROM customer_domains WHERE tls"
channel = %q
interval = "1h"
grace = "1h"
`, dsn, channel))
	clock, log := &offsetClock{}, &daemontest.SyncBuffer{}
	d := serveInventory(t, path, clock, log)
	waitFor(t, "the row present at start issued", func() bool { return issued(t, d.Store, "first-certfleet-test") != nil })

	start := time.Now()
	exec(`INSERT INTO customer_domains (domain, aliases) VALUES ('shop.certfleet.test', '{www.shop.certfleet.test}')`)
	waitFor(t, "the inserted row issued", func() bool { return issued(t, d.Store, "shop-certfleet-test") != nil })
	t.Logf("insert to issued certificate: %s", time.Since(start).Round(time.Millisecond))

	exec(`UPDATE customer_domains SET aliases = '{}' WHERE domain = 'shop.certfleet.test'`)
	waitFor(t, "the updated row re-issued", func() bool {
		return slices.Equal(issued(t, d.Store, "shop-certfleet-test"), []string{"shop.certfleet.test"})
	})

	exec(`DELETE FROM customer_domains WHERE domain = 'shop.certfleet.test'`)
	waitFor(t, "the deleted row pending", func() bool {
		return !pendingOf(t, d.Store, "inventory:customers")["shop-certfleet-test"].IsZero()
	})
	if !enabledSpec(t, d.Store, "shop-certfleet-test") {
		t.Fatal("withdrawn at once; want it kept for the grace")
	}
	clock.Advance(2 * time.Hour)
	exec(`UPDATE customer_domains SET aliases = aliases`) // any statement notifies
	waitFor(t, "the deleted row withdrawn after the grace", func() bool { return !enabledSpec(t, d.Store, "shop-certfleet-test") })
	if !enabledSpec(t, d.Store, "first-certfleet-test") {
		t.Error("the other row was withdrawn")
	}
}

// TestInventoryLDAPEndToEnd: Debian's slapd through Pebble: entries added
// and changed are issued at once (its persistent search), the attribute
// removed makes a withdrawal pending, the server stopped changes nothing
// (even past the grace) and is reported once, and after a restart changes
// are seen again.
func TestInventoryLDAPEndToEnd(t *testing.T) {
	srv := slapdtest.New(t)
	srv.Start()
	shop := srv.AddDomain("shop", "TRUE", "shop.certfleet.test")
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[inventory.ldap-main]
type = "ldap"
url = %q
bind_dn = %q
password = %q
base = %q
filter = "(letsencrypt=TRUE)"
attributes = { identifiers = "associatedDomain", name = "dc" }
interval = "1h"
grace = "1h"
`, srv.URL, slapdtest.RootDN, slapdtest.RootPW, slapdtest.Domains))
	clock, log := &offsetClock{}, &daemontest.SyncBuffer{}
	d := serveInventory(t, path, clock, log)
	rec := d.Reconcilers()[0]
	waitFor(t, "shop issued", func() bool { return issued(t, d.Store, "shop") != nil })

	srv.AddDomain("blog", "TRUE", "blog.certfleet.test")
	waitFor(t, "an added entry issued", func() bool { return issued(t, d.Store, "blog") != nil })
	srv.Modify(shop, func(r *ldap.ModifyRequest) { r.Add("associatedDomain", []string{"www.shop.certfleet.test"}) })
	waitFor(t, "a changed entry re-issued", func() bool {
		return slices.Equal(issued(t, d.Store, "shop"), []string{"shop.certfleet.test", "www.shop.certfleet.test"})
	})
	srv.Modify("dc=blog,"+slapdtest.Domains, func(r *ldap.ModifyRequest) { r.Delete("letsencrypt", nil) })
	waitFor(t, "the attribute removed: pending", func() bool { return !pendingOf(t, d.Store, "inventory:ldap-main")["blog"].IsZero() })
	if !enabledSpec(t, d.Store, "blog") {
		t.Fatal("an entry that lost the attribute was withdrawn at once")
	}

	// The server stops. Past the grace, passes fail and change nothing.
	srv.Stop()
	clock.Advance(2 * time.Hour)
	rec.Wake()
	waitFor(t, "the failure reported", func() bool { return strings.Contains(log.String(), "inventory source failed") })
	rec.Wake()
	waitFor(t, "a second failed pass", func() bool { return strings.Contains(log.String(), "inventory source still failing") })
	if !enabledSpec(t, d.Store, "blog") || !enabledSpec(t, d.Store, "shop") {
		t.Fatal("a source that cannot be read withdrew certificates")
	}
	if n := strings.Count(log.String(), "inventory source failed"); n != 1 {
		t.Errorf("the failure was logged %d times, want once", n)
	}

	// Back: the persistent search comes back by itself, the pending
	// withdrawal's grace is over, and a new entry is issued.
	srv.Start()
	waitFor(t, "the recovery", func() bool { return strings.Contains(log.String(), "readable again") })
	waitFor(t, "blog withdrawn after its grace", func() bool { return !enabledSpec(t, d.Store, "blog") })
	srv.AddDomain("news", "TRUE", "news.certfleet.test")
	waitFor(t, "an entry added after the restart issued", func() bool { return issued(t, d.Store, "news") != nil })
	if !enabledSpec(t, d.Store, "shop") {
		t.Error("shop was withdrawn")
	}
}
