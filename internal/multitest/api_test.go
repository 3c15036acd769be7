package multitest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/postgres"
)

// apiInstance is one certfleet instance serving the HTTP API, wired as
// cmd/certfleet wires the daemon: its own pool, issuer and manager, the
// manager's deployer and the store's notifications both waking the API's
// long-polls through one certfleet.Changes.
type apiInstance struct {
	store   *postgres.Store
	mgr     *manager.Manager
	changes *certfleet.Changes
	api     *httptest.Server
	// stopManager stops the instance's manager; its API keeps serving.
	stopManager func()
}

// changesDeployer is the part of the daemon's deployer the API relies on:
// a certificate issued here wakes this instance's long-polls.
type changesDeployer struct{ c *certfleet.Changes }

func (d changesDeployer) Deploy(_ context.Context, sp certfleet.CertificateSpec, _ certfleet.Issuance) error {
	d.c.NotifySpec(sp.Name)
	return nil
}

// newAPIInstance starts an instance that runs until ctx ends (wg waits for
// it). apiPoll is the API's PollInterval: how often a long-poll re-reads the
// store when nothing wakes it.
func (c *cluster) newAPIInstance(ctx context.Context, wg *sync.WaitGroup, name string, apiPoll time.Duration) *apiInstance {
	c.t.Helper()
	m := newInstance(c.t, c.dsn, c.ca.DirectoryURL(), c.ca.TLSRootPEM(), name, nil)
	in := &apiInstance{store: m.Store.(*postgres.Store), mgr: m, changes: &certfleet.Changes{}}
	m.Deployer = changesDeployer{in.changes}
	// The bridge cmd/certfleet's StartAPI runs: other instances' changes
	// (PostgreSQL NOTIFY) wake this instance's long-polls.
	changes := in.store.Changes(ctx)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range changes {
			in.changes.NotifyElsewhere()
		}
	}()
	mctx, mcancel := context.WithCancel(ctx)
	mdone := make(chan struct{})
	go func() { defer wg.Done(); defer close(mdone); m.Run(mctx) }()
	in.stopManager = func() { mcancel(); <-mdone }
	srv := &httpapi.Server{Store: in.store, Changes: in.changes, Wake: m.Wake, PollInterval: apiPoll,
		Logger: testLogger(c.t).With("instance", name, "component", "api")}
	in.api = httptest.NewServer(srv.Handler())
	c.t.Cleanup(in.api.Close)
	return in
}

func (in *apiInstance) client(secret string) *httpapi.Client {
	return &httpapi.Client{BaseURL: in.api.URL, Token: secret}
}

// TestAPIAcrossInstances: two instances serve the API on one database.
// Names requested on A are issued (by whichever manager claims them) and
// B's long-polls return the certificates within a moment of issuance,
// although B re-reads the store only every 30 s on its own: what wakes
// them is A's NOTIFY. Tokens, key reads, withdrawals and revocations are
// shared too.
func TestAPIAcrossInstances(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	// Long-polls on B must be woken by a notification: its own polling
	// (apiPoll) would come too late for the deadline below.
	const apiPoll, wait, maxLatency = 30 * time.Second, 20 * time.Second, 2 * time.Second
	a := c.newAPIInstance(ctx, &wg, "api-a", time.Second)
	b := c.newAPIInstance(ctx, &wg, "api-b", apiPoll)

	// A token made through A works on B at once.
	id, secret, hash := certfleet.NewTokenSecret()
	if err := a.store.CreateToken(t.Context(), certfleet.Token{ID: id, Description: "multitest", Names: []string{"*"},
		Permissions: []certfleet.Permission{certfleet.PermAdmin}, Hash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ca, cb := a.client(secret), b.client(secret)

	names := []string{"one.certfleet.test", "two.certfleet.test", "three.certfleet.test"}
	specOf := map[string]string{}
	for _, name := range names {
		st, err := ca.PutName(t.Context(), name, nil)
		if err != nil {
			t.Fatalf("PUT %s on A: %v", name, err)
		}
		specOf[name] = st.Certificate
	}

	start := time.Now()
	type result struct {
		name string
		pem  httpapi.PEM
		at   time.Time
		err  error
	}
	results := make(chan result, len(names))
	for _, name := range names {
		go func() {
			p, err := cb.Fetch(t.Context(), name, "fullchain", httpapi.FetchOptions{Wait: wait})
			results <- result{name, p, time.Now(), err}
		}()
	}
	var latencies []time.Duration
	byInstance := map[string]int{}
	for range names {
		r := <-results
		if r.err != nil {
			t.Fatalf("long-poll of %s on B: %v after %v", r.name, r.err, time.Since(start).Round(time.Millisecond))
		}
		lat, by := c.checkServed(specOf[r.name], r.pem, r.at)
		latencies = append(latencies, lat)
		byInstance[by]++
		if lat > maxLatency {
			t.Errorf("B's long-poll of %s returned %v after the certificate was issued by %s, want under %v", r.name, lat, by, maxLatency)
		}
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("%d names PUT on A and long-polled on B: returned %v after the PUTs, %v after issuance (sorted); issued by %v",
		len(names), time.Since(start).Round(time.Millisecond), latencies, byInstance)
	c.checkExactlyOnce(len(names))

	// B's manager stops, so only A can issue and only A's NOTIFY can wake
	// B: the name's key is destroyed and the name wanted again (a new
	// order), while B long-polls with the ETag of the old certificate.
	b.stopManager()
	old, err := cb.Fetch(t.Context(), names[2], "fullchain", httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.store.WithdrawSpec(t.Context(), specOf[names[2]], true); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.PutName(t.Context(), names[2], nil); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	renewed, err := cb.Fetch(t.Context(), names[2], "fullchain", httpapi.FetchOptions{Wait: wait, ETag: old.ETag})
	at := time.Now()
	if err != nil || renewed.NotModified {
		t.Fatalf("long-poll on B for %s's new certificate: %+v, %v after %v (B polls the store only every %v: was it woken?)",
			names[2], renewed, err, at.Sub(start).Round(time.Millisecond), apiPoll)
	}
	lat, by := c.checkServed(specOf[names[2]], renewed, at)
	if by != "api-a" || lat > maxLatency {
		t.Errorf("B returned %s's new certificate (issued by %s) %v after issuance, want by api-a under %v", names[2], by, lat, maxLatency)
	}
	t.Logf("a certificate issued by A reached B's long-poll %v after issuance", lat)

	// A key read on B lands in the one append-only log, seen from A.
	key, err := cb.Fetch(t.Context(), names[0], "privkey", httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.Fetch(t.Context(), names[0], "fullchain", httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(chain.Data, key.Data); err != nil {
		t.Errorf("the key from B does not match the certificate from A: %v", err)
	}
	reads, err := a.store.KeyReads(t.Context(), 0)
	if err != nil || len(reads) != 1 || reads[0].TokenID != id || reads[0].Spec != specOf[names[0]] {
		t.Errorf("key reads seen from A = %+v, %v; want B's one read by %s", reads, err, id)
	}

	// Withdrawn on B: A stops serving it soon (within its name index's
	// TTL: a write on another instance does not invalidate it).
	if err := cb.DeleteName(t.Context(), names[1], false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := ca.Fetch(t.Context(), names[1], "fullchain", httpapi.FetchOptions{})
		var p *httpapi.Problem
		if errors.As(err, &p) && p.Status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A still serves %s 5 s after B withdrew it: %v", names[1], err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Revoked through A: B refuses the token within its token cache's
	// bound (a second; see httpapi's cacheTTL).
	if err := a.store.RevokeToken(t.Context(), id, time.Now()); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		_, err := cb.Fetch(t.Context(), names[0], "fullchain", httpapi.FetchOptions{})
		var p *httpapi.Problem
		if errors.As(err, &p) && p.Status == http.StatusUnauthorized {
			break
		}
		if time.Since(revoked) > 2*time.Second {
			t.Fatalf("B still accepts a token revoked through A 2 s ago: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkServed checks that pem is the current certificate of spec (its ECDSA
// job) and returns how long after its issuance at is, and which instance
// issued it.
func (c *cluster) checkServed(spec string, pem httpapi.PEM, at time.Time) (time.Duration, string) {
	c.t.Helper()
	key := certfleet.JobKey{Spec: spec, KeyType: certfleet.ECDSAP256}
	job, err := c.db.Job(c.t.Context(), key)
	if err != nil || job.CurrentID == 0 {
		c.t.Fatalf("job %s: %+v, %v", key, job, err)
	}
	iss, err := c.db.Issuance(c.t.Context(), job.CurrentID)
	if err != nil {
		c.t.Fatal(err)
	}
	if !bytes.Equal(pem.Data, iss.ChainPEM) {
		c.t.Errorf("%s: the fullchain served is not the current certificate", spec)
	}
	attempts, err := c.db.Attempts(c.t.Context(), key, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, a := range attempts { // newest first
		if a.Outcome == certfleet.OutcomeIssued {
			return max(at.Sub(a.FinishedAt), 0), a.Instance
		}
	}
	c.t.Fatalf("%s: no issued attempt recorded", key)
	return 0, ""
}
