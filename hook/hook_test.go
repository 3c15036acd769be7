package hook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/hook"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
)

var secret = []byte("whsec-0123456789abcdef")

// TestSignKnownAnswer: the signature is HMAC-SHA256 over
// "TIMESTAMP.BODY", as docs/events.md tells receivers; the value was
// computed with openssl dgst -sha256 -hmac.
func TestSignKnownAnswer(t *testing.T) {
	body := []byte(`{"key":"certfleet-event-1","type":"issued"}`)
	const want = "v1=fb2292d0c36a48bcf27d2cc6efca5666cd984535c6516ea962202a5b917ccd37"
	if got := hook.Sign(secret, 1767225600, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	now := time.Unix(1767225600, 0).Add(time.Minute)
	if err := hook.Verify(secret, "1767225600", want, body, now, 0); err != nil {
		t.Fatalf("Verify of a good request: %v", err)
	}
	if err := hook.Verify(secret, "1767225600", "v1=00, "+want, body, now, 0); err != nil {
		t.Fatalf("Verify with a second signature (rotation): %v", err)
	}
	for _, tc := range []struct {
		name, ts, sig string
		body          []byte
		secret        []byte
		now           time.Time
		want          string
	}{
		{"body changed", "1767225600", want, []byte(`{"key":"certfleet-event-2","type":"issued"}`), secret, now, "does not match"},
		{"timestamp changed", "1767225601", want, body, secret, now, "does not match"},
		{"other secret", "1767225600", want, body, []byte("another-secret-0123"), now, "does not match"},
		{"replayed later", "1767225600", want, body, secret, now.Add(time.Hour), "stale or replayed"},
		{"from the future", "1767225600", want, body, secret, now.Add(-time.Hour), "stale or replayed"},
		{"no timestamp", "", want, body, secret, now, "not Unix seconds"},
		{"no signature", "1767225600", "", body, secret, now, "does not match"},
	} {
		err := hook.Verify(tc.secret, tc.ts, tc.sig, tc.body, tc.now, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Verify = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a dispatcher's clock the test moves.
type clock struct{ ns atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// CatchUp moves the clock to the real time if it is behind: events are
// dated by the store's clock when they are recorded.
func (c *clock) CatchUp() {
	if now := time.Now().UnixNano(); now > c.ns.Load() {
		c.ns.Store(now)
	}
}

// receiver is a real HTTP server that verifies every request's signature
// and keeps what it accepted, by idempotency key; it refuses the first
// failFirst requests (503) and any with a bad signature (401).
type receiver struct {
	srv       *httptest.Server
	failFirst atomic.Int32
	mu        sync.Mutex // guards got, tries, bad
	got       map[string][]hook.Payload
	tries     int
	bad       []string
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	r := &receiver{got: make(map[string][]hook.Payload)}
	r.failFirst.Store(int32(failFirst))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.tries++
		if err := hook.Verify(secret, req.Header.Get(hook.HeaderTimestamp), req.Header.Get(hook.HeaderSignature), body, time.Now(), 0); err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.failFirst.Add(-1) >= 0 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		var p hook.Payload
		if err := json.Unmarshal(body, &p); err != nil || p.Key != req.Header.Get(hook.HeaderIdempotencyKey) || p.Type != req.Header.Get(hook.HeaderEvent) {
			r.bad = append(r.bad, fmt.Sprintf("payload %s (%v) does not match its headers", body, err))
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		r.got[p.Key] = append(r.got[p.Key], p)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// check fails the test unless the receiver accepted each of keys exactly
// once, and nothing else, and every signature verified.
func (r *receiver) check(t *testing.T, keys []string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Errorf("the receiver refused requests: %v", r.bad)
	}
	for _, k := range keys {
		if n := len(r.got[k]); n != 1 {
			t.Errorf("event %s accepted %d times, want exactly once", k, n)
		}
	}
	if len(r.got) != len(keys) {
		t.Errorf("receiver accepted %d events, want %d", len(r.got), len(keys))
	}
}

func renewedEvent(i int) certfleet.Event {
	return certfleet.Event{Kind: certfleet.EventRenewed, Actor: "instance:test", Certificate: fmt.Sprintf("web-%02d", i),
		KeyType: certfleet.ECDSAP256, Serial: fmt.Sprintf("%04x", i)}
}

// TestFailedDeliveryStaysOwedAcrossRestart: a receiver that fails the
// first attempts gets every event exactly once, with a good signature,
// after a restart of certfleet in between (the store holds what is owed),
// and events a hook does not want are recorded but never owed to it.
func TestFailedDeliveryStaysOwedAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	recv := newReceiver(t, 3)
	clk := newClock()
	hooks := func() []hook.Hook {
		return []hook.Hook{{Name: "ops", Types: []string{certfleet.HookRenewed}, Sender: &hook.Webhook{URL: recv.srv.URL, Secret: secret}}}
	}
	st := openSQLite(t, path)
	rec := &hook.Recorder{Store: st, Hooks: hooks()}
	var keys []string
	for i := range 3 {
		if err := rec.RecordEvent(t.Context(), renewedEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.RecordEvent(t.Context(), certfleet.Event{Kind: certfleet.EventTokenCreated, Actor: "cli:root"}); err != nil {
		t.Fatal(err)
	}
	if err := rec.RecordEvent(t.Context(), certfleet.Event{Kind: certfleet.EventIssued, Actor: "instance:test", Certificate: "new"}); err != nil {
		t.Fatal(err)
	}
	trail, err := st.Events(t.Context(), certfleet.EventFilter{})
	if err != nil || len(trail) != 5 {
		t.Fatalf("audit trail = %d events, %v; want all 5", len(trail), err)
	}
	for _, e := range slices.Backward(trail) { // oldest first
		if e.Kind == certfleet.EventRenewed {
			keys = append(keys, certfleet.EventKey(e.ID))
		}
	}

	clk.CatchUp()
	d := &hook.Dispatcher{Store: st, Hooks: hooks(), Instance: "one", Now: clk.Now}
	for want := range 3 { // three rounds, each refused once: a failure ends a round
		rep, err := d.Round(t.Context())
		if err != nil || rep.Sent != 0 || rep.Failed != 1 {
			t.Fatalf("round %d against a failing receiver = %+v, %v; want one failure", want, rep, err)
		}
		clk.Add(time.Hour) // past any backoff
	}
	owed, err := st.Deliveries(t.Context(), certfleet.DeliveryFilter{OwedOnly: true})
	if err != nil || len(owed) != 3 {
		t.Fatalf("owed after the failures = %d, %v; want 3", len(owed), err)
	}
	if owed[0].Attempts != 3 || !strings.Contains(owed[0].LastError, "503") {
		t.Errorf("first delivery after 3 failures: attempts %d, last error %q", owed[0].Attempts, owed[0].LastError)
	}
	st.Close()

	// certfleet restarts: another store and dispatcher on the same file.
	st = openSQLite(t, path)
	d = &hook.Dispatcher{Store: st, Hooks: hooks(), Instance: "one-again", Now: clk.Now}
	rep, err := d.Round(t.Context())
	if err != nil || rep.Sent != 3 || rep.Failed != 0 {
		t.Fatalf("round after the restart = %+v, %v; want 3 sent", rep, err)
	}
	if rep, err := d.Round(t.Context()); err != nil || rep.Sent+rep.Failed != 0 {
		t.Fatalf("round with nothing owed = %+v, %v", rep, err)
	}
	recv.check(t, keys)
	if owed, _ := st.Deliveries(t.Context(), certfleet.DeliveryFilter{OwedOnly: true}); len(owed) != 0 {
		t.Errorf("still owed after delivery: %d", len(owed))
	}
	got := recv.got[keys[0]][0]
	if got.Type != certfleet.HookRenewed || got.Event.Certificate != "web-00" || got.Event.Serial != "00" /* as openssl prints a zero serial */ || got.Issuance != nil {
		t.Errorf("payload = %+v", got)
	}
}

// TestBackoff: a failed delivery is not tried again before its backoff has
// passed, and the backoff doubles.
func TestBackoff(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))
	recv := newReceiver(t, 100)
	clk := newClock()
	hooks := []hook.Hook{{Name: "ops", Sender: &hook.Webhook{URL: recv.srv.URL, Secret: secret}}}
	if err := (&hook.Recorder{Store: st, Hooks: hooks}).RecordEvent(t.Context(), renewedEvent(1)); err != nil {
		t.Fatal(err)
	}
	clk.CatchUp()
	d := &hook.Dispatcher{Store: st, Hooks: hooks, Instance: "one", Now: clk.Now, MinBackoff: time.Minute, MaxBackoff: 4 * time.Minute}
	var waits []time.Duration
	for range 4 {
		if rep, err := d.Round(t.Context()); err != nil || rep.Failed != 1 {
			t.Fatalf("round = %+v, %v; want a failure", rep, err)
		}
		owed, err := st.Deliveries(t.Context(), certfleet.DeliveryFilter{OwedOnly: true})
		if err != nil || len(owed) != 1 {
			t.Fatal(owed, err)
		}
		wait := owed[0].NextAt.Sub(clk.Now())
		waits = append(waits, wait)
		clk.Add(wait - time.Second)
		if rep, err := d.Round(t.Context()); err != nil || rep.Sent+rep.Failed != 0 {
			t.Fatalf("round before the backoff passed = %+v, %v; want nothing tried", rep, err)
		}
		clk.Add(time.Second)
	}
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
		if waits[i] > want || waits[i] < want*3/4-time.Millisecond {
			t.Errorf("wait after failure %d = %s, want %s less at most a quarter", i+1, waits[i], want)
		}
	}
}

// TestDeliveredOnceAcrossInstances: several instances on one PostgreSQL
// database, each running its dispatcher, send every event once, though
// the receiver fails the first attempts.
func TestDeliveredOnceAcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	recv := newReceiver(t, 5)
	const instances, events = 3, 40
	var stores []*postgres.Store
	var dispatchers []*hook.Dispatcher
	for i := range instances {
		st := openPostgres(t, dsn)
		stores = append(stores, st)
		dispatchers = append(dispatchers, &hook.Dispatcher{Store: st, Instance: fmt.Sprintf("instance-%d", i),
			Hooks:      []hook.Hook{{Name: "ops", Sender: &hook.Webhook{URL: recv.srv.URL, Secret: secret}}},
			MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, Interval: 20 * time.Millisecond})
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, d := range dispatchers {
		wg.Go(func() { _ = d.Run(ctx) })
	}
	// Events recorded through every instance, while they all send.
	for i := range events {
		st := stores[i%instances]
		rec := &hook.Recorder{Store: st, Hooks: dispatchers[i%instances].Hooks, Wake: dispatchers[i%instances].Wake}
		if err := rec.RecordEvent(t.Context(), renewedEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		owed, err := stores[0].Deliveries(t.Context(), certfleet.DeliveryFilter{OwedOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(owed) == 0 {
			break
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%d deliveries still owed when the test timed out", len(owed))
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	wg.Wait()
	all, err := stores[0].Deliveries(t.Context(), certfleet.DeliveryFilter{Limit: 1000})
	if err != nil || len(all) != events {
		t.Fatalf("deliveries = %d, %v; want %d", len(all), err, events)
	}
	var keys []string
	for _, d := range all {
		keys = append(keys, d.Key)
	}
	recv.check(t, keys)
}

// TestSocketConsumer: a consumer listening on a UNIX socket gets each
// event as one line of JSON; when it goes away and comes back on the same
// path, certfleet connects again and nothing is lost (with
// acknowledgements) or repeated.
func TestSocketConsumer(t *testing.T) {
	dir, err := os.MkdirTemp("", "cfsock") // short: socket paths are limited to about 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "events.sock")
	st := openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))
	clk := newClock()
	sender := &hook.Socket{Path: sock, Ack: true}
	hooks := []hook.Hook{{Name: "inventory", Sender: sender}}
	rec := &hook.Recorder{Store: st, Hooks: hooks}
	d := &hook.Dispatcher{Store: st, Hooks: hooks, Instance: "one", Now: clk.Now}
	t.Cleanup(func() { d.Close() })

	// No consumer yet: owed.
	if err := rec.RecordEvent(t.Context(), renewedEvent(0)); err != nil {
		t.Fatal(err)
	}
	clk.CatchUp()
	if rep, err := d.Round(t.Context()); err != nil || rep.Failed != 1 {
		t.Fatalf("round without a consumer = %+v, %v; want a failure", rep, err)
	}

	consumed := &consumerLog{}
	c := startConsumer(t, consumed, sock, 1)
	clk.Add(time.Hour)
	for i := 1; i < 3; i++ {
		if err := rec.RecordEvent(t.Context(), renewedEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := d.Round(t.Context()); err != nil || rep.Sent != 3 {
		t.Fatalf("round with a consumer = %+v, %v; want 3 sent", rep, err)
	}
	// The consumer restarts: its connection is gone, a new listener
	// takes the path.
	c.stop()
	c = startConsumer(t, consumed, sock, 2)
	for i := 3; i < 5; i++ {
		if err := rec.RecordEvent(t.Context(), renewedEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	clk.CatchUp()
	if rep, err := d.Round(t.Context()); err != nil || rep.Sent != 2 || rep.Failed != 0 {
		t.Fatalf("round after the consumer restarted = %+v, %v; want 2 sent on a new connection", rep, err)
	}
	c.stop()
	var certs []string
	for _, p := range consumed.all() {
		certs = append(certs, p.Event.Certificate)
	}
	if want := "[web-00 web-01 web-02 web-03 web-04]"; fmt.Sprint(certs) != want {
		t.Errorf("consumer read %v, want %s (each once, in order)", certs, want)
	}
	if got := consumed.connections(); got != 2 {
		t.Errorf("certfleet connected %d times, want 2 (one per consumer)", got)
	}
}

// consumerLog is what the consumers of one test read.
type consumerLog struct {
	mu    sync.Mutex // guards lines, conns
	lines []hook.Payload
	conns int
}

func (l *consumerLog) all() []hook.Payload {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *consumerLog) connections() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns
}

type consumer struct {
	ln   net.Listener
	done chan struct{}
	mu   sync.Mutex // guards conns
	conn []net.Conn
}

// startConsumer listens on sock and acknowledges each line with its key,
// as docs/events.md tells socket consumers to.
func startConsumer(t *testing.T, consumed *consumerLog, sock string, gen int) *consumer {
	t.Helper()
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := &consumer{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conn = append(c.conn, conn)
			c.mu.Unlock()
			consumed.mu.Lock()
			consumed.conns++
			consumed.mu.Unlock()
			go func() {
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					var p hook.Payload
					if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
						t.Errorf("consumer %d: line %q: %v", gen, sc.Text(), err)
						return
					}
					consumed.mu.Lock()
					consumed.lines = append(consumed.lines, p)
					consumed.mu.Unlock()
					fmt.Fprintf(conn, "%s\n", p.Key)
				}
			}()
		}
	}()
	return c
}

func (c *consumer) stop() {
	c.ln.Close()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conn {
		conn.Close()
	}
}
