package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/internal/pgtest"
)

// currentIssuance is the current certificate of a lineage.
func currentIssuance(t *testing.T, store certfleet.Store, spec string) certfleet.Issuance {
	t.Helper()
	j, err := store.Job(t.Context(), certfleet.JobKey{Spec: spec, KeyType: certfleet.ECDSAP256})
	if err != nil || j.CurrentID == 0 {
		t.Fatalf("job %s: %+v, %v", spec, j, err)
	}
	iss, err := store.Issuance(t.Context(), j.CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func mustKeyID(t *testing.T, iss certfleet.Issuance) string {
	t.Helper()
	id, err := iss.KeyID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCompromiseEndToEnd is issue 6 §8 against real parts: Pebble, the
// daemon serving the API on SQLite, a real agent and a TLS endpoint that
// serves what the agent installed. A reuse_key certificate has two archived
// certificates with one key; `certfleet compromise web` revokes both with
// reason keyCompromise (Pebble's own records say so), the daemon issues a
// replacement with a new key, the agent installs it through its long-poll,
// the endpoint serves it, and the command reports done. Another
// certificate is untouched, the key is blocked, the events are recorded.
func TestCompromiseEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end with a daemon and an agent")
	}
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	apiAddr := fmt.Sprintf("127.0.0.1:%d", daemontest.FreePort(t))
	endpointLn := issuetest.Listen(t)
	certs := func(names string) string {
		return fmt.Sprintf(`[api]
listen = %q
[[certificate]]
name = "web"
identifiers = [%s]
reuse_key = true
endpoints = [%q]
[[certificate]]
name = "other"
identifiers = ["other.certfleet.test"]
`, apiAddr, names, endpointLn.Addr().String())
	}
	// Two certificates with one key: the second (a new name) reuses it.
	path := daemontest.WriteConfig(t, dir, ca, port, certs(`"web.certfleet.test"`))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: %d\n%s\n%s", code, out, errOut)
	}
	path = daemontest.WriteConfig(t, dir, ca, port, certs(`"web.certfleet.test", "www.certfleet.test"`))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 1 {
		t.Fatalf("re-issue with a second name: %+v, %v", rep.Results, err)
	}
	old := currentIssuance(t, d.Store, "web")
	archive, err := d.Store.Issuances(t.Context(), certfleet.IssuanceFilter{Spec: "web"})
	if err != nil || len(archive) != 2 || mustKeyID(t, archive[0]) != mustKeyID(t, archive[1]) {
		t.Fatalf("archive of web: %d issuances (%v); want two with one key (reuse_key)", len(archive), err)
	}
	oldKey := mustKeyID(t, old)
	otherBefore := currentIssuance(t, d.Store, "other")

	// The daemon as serve runs it, looking at the store every second
	// (the default 30 s poll only makes the test slower).
	d.Manager.PollInterval = time.Second
	if _, _, err := d.StartAPI(t.Context(), daemon.APIOptions{}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	wg.Go(func() { d.Serve(runCtx) })

	// An agent installs web's certificate; the endpoint serves whatever
	// the agent installed (read at each handshake, like a reload).
	code, secret, errOut := runCLI(t, "token", "create", "-config", path, "-names", "*.certfleet.test", "-permissions", "read-certs,read-keys", "-description", "host-a")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errOut)
	}
	hostDir := t.TempDir()
	fullchain, privkey := filepath.Join(hostDir, "web", "fullchain.pem"), filepath.Join(hostDir, "web", "privkey.pem")
	a, err := agent.New(agent.Config{Name: "host-a", Client: &httpapi.Client{BaseURL: "http://" + apiAddr, Token: strings.TrimSpace(secret)},
		StateDir: filepath.Join(hostDir, "state"), Wait: 5 * time.Second, Resync: time.Minute, MaxBackoff: time.Second,
		Certificates: []agent.Certificate{{Name: "web.certfleet.test", Files: agent.Files{Fullchain: fullchain, Key: privkey}}}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { a.Run(runCtx) })
	var served atomic.Pointer[[2]string] // the endpoint's certificate and key files
	served.Store(&[2]string{fullchain, privkey})
	go func() {
		for {
			c, err := endpointLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
					f := served.Load()
					cert, err := tls.LoadX509KeyPair(f[0], f[1])
					return &cert, err
				}})
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				tc.Handshake()
			}()
		}
	}()
	waitUntil(t, "the agent reports web's current certificate", 60*time.Second, func() bool {
		reps, err := d.Store.(certfleet.FleetStore).AgentReports(t.Context(), certfleet.AgentReportFilter{Agent: "host-a"})
		return err == nil && len(reps) == 1 && reps[0].Fingerprint == old.Fingerprint
	})

	// Usage errors first: no --yes; a name or key ID that matches nothing.
	if code, _, errOut := runCLI(t, "compromise", "-config", path, "web"); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("without --yes: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "compromise", "-config", path, "--yes", "0123456789abcdef"); code != 2 || !strings.Contains(errOut, "no certificate in the archive") {
		t.Fatalf("unknown key ID: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "compromise", "-config", path, "--yes", "nope"); code != 2 || !strings.Contains(errOut, "neither a certificate name") {
		t.Fatalf("unknown name: exit %d %s", code, errOut)
	}
	if st, _ := daemontest.CACertStatus(t, ca, old.Serial); st != "Valid" {
		t.Fatalf("a usage error touched the CA: %s", st)
	}

	code, out, errOut := runCLI(t, "compromise", "-config", path, "--yes", "--timeout", "90s", "web")
	t.Logf("certfleet compromise web:\n%s", out)
	if code != 0 {
		t.Fatalf("compromise: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"key " + oldKey + " declared compromised: 2 certificate(s)", "due now  web/ecdsa-p256", "done:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "revoked  web/ecdsa-p256"); n != 2 {
		t.Errorf("%d revocations printed, want 2:\n%s", n, out)
	}
	// The CA's own records: both old certificates revoked, keyCompromise.
	for _, iss := range archive {
		if st, reason := daemontest.CACertStatus(t, ca, iss.Serial); st != "Revoked" || reason != certfleet.ReasonKeyCompromise {
			t.Errorf("CA: serial %s is %s with reason %d; want Revoked, %d (keyCompromise)", iss.Serial, st, reason, certfleet.ReasonKeyCompromise)
		}
	}
	if st, _ := daemontest.CACertStatus(t, ca, otherBefore.Serial); st != "Valid" {
		t.Errorf("the other certificate is %s at the CA, want Valid", st)
	}
	// The replacement has a new key, the old one is blocked, and what the
	// agent installed and the endpoint serves is the replacement.
	cur := currentIssuance(t, d.Store, "web")
	if cur.ID == old.ID || mustKeyID(t, cur) == oldKey {
		t.Fatalf("replacement %d has key %s; want a new certificate with a new key (not %s)", cur.ID, mustKeyID(t, cur), oldKey)
	}
	if blocked, err := d.Store.KeyBlocked(t.Context(), oldKey); err != nil || !blocked {
		t.Errorf("old key blocked = %v, %v", blocked, err)
	}
	if fp := fileFingerprint(t, fullchain); fp != cur.Fingerprint {
		t.Errorf("the agent's file has %s, want the replacement %s", fp, cur.Fingerprint)
	}
	if other := currentIssuance(t, d.Store, "other"); other.ID != otherBefore.ID {
		t.Errorf("the other certificate was replaced")
	}
	// Events for the audit trail.
	evs, err := d.Store.Events(t.Context(), certfleet.EventFilter{Certificate: "web"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Kind]++
		if e.Kind == certfleet.EventRevoked && e.Reason != "keyCompromise" {
			t.Errorf("revoked event with reason %q", e.Reason)
		}
	}
	if kinds[certfleet.EventCompromise] != 1 || kinds[certfleet.EventRevoked] != 2 {
		t.Errorf("events: %v; want 1 %s and 2 %s", kinds, certfleet.EventCompromise, certfleet.EventRevoked)
	}
	// status shows the new key's ID, the prefix compromise accepts.
	_, st, _ := runCLI(t, "status", "-config", path)
	if !strings.Contains(st, mustKeyID(t, cur)[:16]) || strings.Contains(st, oldKey[:16]) {
		t.Errorf("status does not show the current key ID %s:\n%s", mustKeyID(t, cur)[:16], st)
	}

	// A host that still serves the old certificate keeps the rollout from
	// finishing: declaring the old key again (by its ID) tracks until
	// --timeout and exits 3, naming the endpoint.
	oldFiles := [2]string{filepath.Join(dir, "old-fullchain.pem"), filepath.Join(dir, "old-privkey.pem")}
	if err := os.WriteFile(oldFiles[0], old.ChainPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(oldFiles[1], old.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	served.Store(&oldFiles)
	code, out, errOut = runCLI(t, "compromise", "-config", path, "--yes", "--timeout", "3s", oldKey)
	if code != exitRolloutTimeout || !strings.Contains(out, "1 endpoint(s) serving one ("+"web "+endpointLn.Addr().String()+" serves serial "+certfleet.FormatSerial(old.Serial)) ||
		!strings.Contains(errOut, "rollout not finished after 3s") {
		t.Fatalf("an endpoint on the old certificate: exit %d, want %d\n%s\n%s", code, exitRolloutTimeout, out, errOut)
	}
	served.Store(&[2]string{fullchain, privkey})

	// By key ID prefix, without waiting: the other certificate.
	otherKey := mustKeyID(t, otherBefore)
	code, out, errOut = runCLI(t, "compromise", "-config", path, "--yes", "--no-wait", otherKey[:12])
	if code != 0 || !strings.Contains(out, "revoked  other/ecdsa-p256 serial "+certfleet.FormatSerial(otherBefore.Serial)) || strings.Contains(out, "done:") {
		t.Fatalf("compromise by key ID prefix --no-wait: exit %d\n%s\n%s", code, out, errOut)
	}
	if st, reason := daemontest.CACertStatus(t, ca, otherBefore.Serial); st != "Revoked" || reason != certfleet.ReasonKeyCompromise {
		t.Errorf("other: %s, reason %d", st, reason)
	}
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileFingerprint(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	chain, err := certfleet.ParseChain(b)
	if err != nil {
		return ""
	}
	return certfleet.Fingerprint(chain[0])
}

// TestCompromiseIssueWithoutDaemon: with no certfleet serve running (a cron
// setup), --issue orders the replacement in the command itself; the
// rollout is done once it is issued (no agents, no endpoints). On SQLite
// and on PostgreSQL (the blocklist and the archive scan of each store).
func TestCompromiseIssueWithoutDaemon(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testCompromiseIssue(t, "") })
	t.Run("postgres", func(t *testing.T) { testCompromiseIssue(t, pgtest.DSN(t)) })
}

func testCompromiseIssue(t *testing.T, dsn string) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"solo\"\nidentifiers = [\"solo.certfleet.test\"]\nreuse_key = true\n")
	state := filepath.Join(dir, "state.db")
	if dsn != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), `state = "state.db"`, fmt.Sprintf("state = %q", dsn), 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		state = dsn
	}
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: %d\n%s\n%s", code, out, errOut)
	}
	store := openForTest(t, state, "")
	old := currentIssuance(t, store, "solo")
	store.Close()

	code, out, errOut := runCLI(t, "compromise", "-config", path, "--yes", "--issue", "--timeout", "60s", "solo")
	if code != 0 || !strings.Contains(out, "issued   solo") || !strings.Contains(out, "done:") {
		t.Fatalf("compromise --issue: exit %d\n%s\n%s", code, out, errOut)
	}
	if st, reason := daemontest.CACertStatus(t, ca, old.Serial); st != "Revoked" || reason != certfleet.ReasonKeyCompromise {
		t.Errorf("CA: %s, reason %d", st, reason)
	}
	store = openForTest(t, state, "")
	defer store.Close()
	cur := currentIssuance(t, store, "solo")
	if cur.ID == old.ID || mustKeyID(t, cur) == mustKeyID(t, old) {
		t.Fatal("no replacement with a new key")
	}
	if blocked, err := store.KeyBlocked(t.Context(), mustKeyID(t, old)); err != nil || !blocked {
		t.Errorf("old key blocked = %v, %v", blocked, err)
	}
	// The files on disk are the replacement's.
	if fp := fileFingerprint(t, filepath.Join(dir, "live", "solo", "fullchain.pem")); fp != cur.Fingerprint {
		t.Errorf("live/solo/fullchain.pem is %s, want the replacement %s", fp, cur.Fingerprint)
	}
}

// TestCompromiseUnreachableEndpoint: an endpoint that cannot be reached
// does not hold the rollout up (docs/compromise.md), but the closing line
// must not claim that no endpoint serves the compromised certificate: it
// names the endpoint as not checked.
func TestCompromiseUnreachableEndpoint(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	closed := fmt.Sprintf("127.0.0.1:%d", daemontest.FreePort(t)) // nothing listens
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf("[[certificate]]\nname = \"solo\"\nidentifiers = [\"solo.certfleet.test\"]\nendpoints = [%q]\n", closed))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "compromise", "-config", path, "--yes", "--issue", "--timeout", "60s", "solo")
	if code != 0 {
		t.Fatalf("compromise --issue: exit %d\n%s\n%s", code, out, errOut)
	}
	var done string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "done:") {
			done = line
		}
	}
	if !strings.Contains(done, "NOT CHECKED") || !strings.Contains(done, closed) || strings.Contains(done, "no agent or endpoint serves") {
		t.Errorf("done line %q: want it to name %s as not checked, not claim that no endpoint serves the key\n%s", done, closed, out)
	}
}

// TestCompromiseTimeoutWithoutScheduler: with no certfleet serve running
// and no --issue, nothing orders the replacement; when --timeout runs out
// (exit 3) the error says so and what to run, not only "waiting".
func TestCompromiseTimeoutWithoutScheduler(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"solo\"\nidentifiers = [\"solo.certfleet.test\"]\n")
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "compromise", "-config", path, "--yes", "--timeout", "1s", "solo")
	if code != exitRolloutTimeout || !strings.Contains(errOut, "waiting: solo") || !strings.Contains(errOut, "certfleet serve running") ||
		!strings.Contains(errOut, "--issue") {
		t.Fatalf("compromise without a scheduler: exit %d, want %d and a hint to run serve, issue or --issue\n%s\n%s", code, exitRolloutTimeout, out, errOut)
	}
}
