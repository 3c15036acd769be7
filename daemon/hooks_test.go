package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/hook"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// fastHooks makes d's hook dispatcher retry within a test's patience.
func fastHooks(d *daemon.Daemon) {
	d.Hooks.MinBackoff, d.Hooks.MaxBackoff, d.Hooks.Interval = 50*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
}

// TestHooksUnderServe (issue 18 §2): serve sends the events of a real
// issuance and a renewal through Pebble to a webhook that refuses the
// first attempts (each event accepted exactly once, every request signed
// right) and to a UNIX socket consumer (every event once, in order), with
// the certificate in the payload and never its key.
func TestHooksUnderServe(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "cfhook") // short: socket paths are limited to about 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "events.sock")
	consumer := listenConsumer(t, sock)

	recv := daemontest.NewHookReceiver(t, 3)
	path := daemontest.WriteConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+daemontest.WebhookHookSection(t, dir, "ops", recv, `types = ["issued", "renewed", "deployed"]`)+fmt.Sprintf(`
[events.hooks.inventory]
type = "socket"
socket = %q
ack = true
`, sock))
	d := daemontest.OpenDaemon(t, path, nil)
	fastHooks(d)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s; webhook got %v, socket got %v", what, recv.Types(), consumer.types())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the issuance's events", func() bool { return len(recv.Accepted()) >= 2 && len(consumer.types()) >= 2 })
	first := daemontest.Current(t, d, "web")
	// A name added: the certificate is replaced at once (a renewal).
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	more := strings.Replace(string(text), `identifiers = ["web.certfleet.test"]`, `identifiers = ["web.certfleet.test", "www.web.certfleet.test"]`, 1)
	if err := os.WriteFile(path, []byte(more), 0o600); err != nil {
		t.Fatal(err)
	}
	next, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(ctx, next); err != nil {
		t.Fatal(err)
	}
	waitFor("the renewal's events", func() bool { return len(recv.Accepted()) >= 4 && len(consumer.types()) >= 4 })
	second := daemontest.Current(t, d, "web")
	if second.Serial == first.Serial {
		t.Fatal("no renewal")
	}
	time.Sleep(500 * time.Millisecond) // more rounds: nothing more is sent

	recv.Check(t)
	if got := recv.Types(); len(got) != 4 || !slices.Contains(got, "issued") || !slices.Contains(got, "renewed") {
		t.Errorf("webhook accepted %v; want issued, renewed and two deployed, once each", got)
	}
	if got, want := consumer.types(), []string{"issued", "deployed", "renewed", "deployed"}; !slices.Equal(got, want) {
		t.Errorf("socket consumer read %v, want %v (in order, once each)", got, want)
	}
	for _, p := range recv.Accepted() {
		want := first
		if p.Type == "renewed" || p.Type == "deployed" && p.Event.Serial == certfleet.FormatSerial(second.Serial) {
			want = second
		}
		iss := p.Issuance
		var names []string
		for _, id := range want.Identifiers {
			names = append(names, id.Value)
		}
		if iss == nil || iss.ID != want.ID || iss.Serial != certfleet.FormatSerial(want.Serial) || iss.ChainPEM != string(want.ChainPEM) ||
			p.Event.Serial != certfleet.FormatSerial(want.Serial) || p.Event.Certificate != "web" || !slices.Equal(iss.Identifiers, names) {
			t.Errorf("%s payload: event %+v, issuance %+v; want serial %s's certificate", p.Type, p.Event, iss, want.Serial)
		}
	}
	owed, err := d.Store.Deliveries(ctx, certfleet.DeliveryFilter{OwedOnly: true})
	if err != nil || len(owed) != 0 {
		t.Errorf("deliveries still owed: %+v, %v", owed, err)
	}
	all, err := d.Store.Deliveries(ctx, certfleet.DeliveryFilter{Hook: "ops"})
	if err != nil || len(all) != 4 {
		t.Fatalf("ops deliveries = %d, %v; want 4", len(all), err)
	}
	failed := 0
	for _, del := range all {
		failed += del.Attempts
	}
	if failed != 3 {
		t.Errorf("failed attempts recorded = %d, want the receiver's 3 refusals", failed)
	}
}

// consumer is a UNIX socket consumer that acknowledges every line.
type consumer struct {
	mu    sync.Mutex // guards lines
	lines []hook.Payload
}

func (c *consumer) types() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.lines {
		out = append(out, p.Type)
	}
	return out
}

func listenConsumer(t *testing.T, sock string) *consumer {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &consumer{}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				sc := bufio.NewScanner(conn)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					var p hook.Payload
					if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
						t.Errorf("consumer: line %.200q: %v", sc.Text(), err)
						return
					}
					c.mu.Lock()
					c.lines = append(c.lines, p)
					c.mu.Unlock()
					fmt.Fprintln(conn, p.Key)
				}
			}()
		}
	}()
	return c
}

// TestHooksFailedAndExpiring (issue 18 §2): a renewal Pebble refuses is a
// failed event, and the expiry incident it opens an expiring event, once,
// though the alert webhook is down and its notification is tried again
// every round; events of types the hook did not ask for are not sent.
func TestHooksFailedAndExpiring(t *testing.T) {
	t.Setenv("PEBBLE_AUTHZREUSE", "0") // every renewal is validated again
	ca, caPort := daemontest.StartCA(t)
	respPort := daemontest.FreePort(t)
	broken := daemontest.BreakableFront(t, caPort, respPort, func(w http.ResponseWriter) { io.WriteString(w, "not-the-key-authorization") })
	dir := t.TempDir()
	recv := daemontest.NewHookReceiver(t, 1)
	pager := daemontest.NewAlertReceiver(t)
	pager.Close() // the alert webhook is down: the notification stays owed
	path := daemontest.WriteConfig(t, dir, ca, respPort, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+daemontest.WebhookHookSection(t, dir, "ops", recv, `types = ["failed", "expiring"]`)+"\n"+daemontest.AlertsSection(t, dir, pager, ""))
	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, path, clk)
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("first issuance failed")
	}
	first := daemontest.Current(t, d, "web")
	if rep, err := d.HookRound(t.Context()); err != nil || rep.Sent != 0 {
		t.Fatalf("hook round after the issuance = %+v, %v; want nothing sent (issued and deployed are not asked for)", rep, err)
	}

	broken.Store(true)
	life := first.NotAfter.Sub(first.NotBefore)
	clk.Set(first.NotAfter.Add(-alert.Settings{}.Warning(life) + time.Hour))
	if _, failed := daemontest.RunOnce(t, d); failed != 1 {
		t.Fatal("renewal through the broken front did not fail")
	}
	for round := range 4 {
		_, err := d.AlertRound(t.Context())
		if err == nil || !strings.Contains(err.Error(), "alert notification(s) could not be delivered") {
			t.Fatalf("alert round %d: %v; want the alert webhook's failure", round, err)
		}
		clk.Set(clk.Now().Add(time.Hour)) // past any hook backoff
	}
	recv.Check(t)
	got := recv.Accepted()
	if types := recv.Types(); !slices.Equal(types, []string{"failed", "expiring"}) {
		t.Fatalf("hook got %v, want failed then expiring, once each", types)
	}
	if f := got[0]; f.Event.Kind != certfleet.EventOrderFailed || f.Event.Certificate != "web" || f.Event.Reason == "" ||
		!strings.Contains(f.Event.Detail, "not-the-key-authorization") && !strings.Contains(f.Event.Reason, "unauthorized") {
		t.Errorf("failed payload: %+v", f.Event)
	}
	if e := got[1]; e.Event.Kind != certfleet.EventExpiring || e.Event.Reason != string(certfleet.SeverityWarning) ||
		e.Event.Serial != certfleet.FormatSerial(first.Serial) || !strings.HasPrefix(e.Key, "certfleet-incident-") {
		t.Errorf("expiring payload: key %s, event %+v", e.Key, e.Event)
	}
	trail, err := d.Store.Events(t.Context(), certfleet.EventFilter{Kind: certfleet.EventExpiring})
	if err != nil || len(trail) != 1 {
		t.Errorf("expiring events in the audit trail = %d, %v; want 1 though the notification was tried 4 times", len(trail), err)
	}
}

// TestHookSecretFile: a webhook's secret file must exist, be readable by
// its owner only and hold at least 16 bytes; errors name the setting,
// never the secret.
func TestHookSecretFile(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	recv := daemontest.NewHookReceiver(t, 0)
	for _, tc := range []struct {
		content string
		mode    os.FileMode
		want    string
	}{
		{daemontest.HookSecret, 0o644, "can be read by every user"},
		{"s3cret\n", 0o600, "the secret is 6 bytes; use at least 16"},
	} {
		dir := t.TempDir()
		path := daemontest.WriteConfig(t, dir, ca, port, daemontest.WebhookHookSection(t, dir, "ops", recv, ""))
		if err := os.WriteFile(filepath.Join(dir, "ops-secret"), []byte(tc.content), tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, "ops-secret"), tc.mode)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true, Instance: "secret-test"})
		if err == nil {
			d.Close()
			t.Fatalf("%q mode %o: opened; want %q", tc.content, tc.mode, tc.want)
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "[events.hooks.ops] secret_file") {
			t.Errorf("%q mode %o: %v; want %q naming the setting", tc.content, tc.mode, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), daemontest.HookSecret) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}
