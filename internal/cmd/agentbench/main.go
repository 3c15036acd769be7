// Command agentbench measures how fast a renewal reaches the hosts (issue #4):
// with n certificates renewed at once and a fleet of agents each watching
// its share of them over loopback, the time from each new issuance being
// stored to its full chain being on the agent's disk.
//
//	go run ./internal/cmd/agentbench                  # 500 certificates, 20 agents of 25
//	go run ./internal/cmd/agentbench -n 100 -agents 4
//
// Everything runs in this process, wired as the daemon wires it: an
// in-process Pebble validating real http-01 over loopback, a SQLite store on
// disk, the manager (with a deployer that wakes the API's long-polls, as
// cmd/certfleet's does), acmeissuer, httpapi.Server on a loopback port with
// one token per agent scoped to exactly its names, and agent.Agent
// instances with their own directories, writing fullchain.pem and
// privkey.pem.
//
// The renewal of all n is the operator changing every spec at once (the
// profile goes from unset to Pebble's "default", a different spec revision
// for the same CA profile), which SyncSpecs makes due at once. Each
// latency runs from the archived issuance's IssuedAt (taken just before
// the store write, so the write is included) to the moment a stat poll
// (every -poll) sees the agent's fullchain.pem replaced; the file is then
// read and must hold the new certificate.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/sqlite"
)

type options struct {
	n, agents, concurrency int
	poll, settle           time.Duration
	issueTimeout           time.Duration
	syncTimeout            time.Duration
	renewTimeout           time.Duration
	dir                    string
	verbose                bool
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 500, "certificates (single-name, ECDSA P-256)")
	flag.IntVar(&o.agents, "agents", 20, "agents; the certificates are split evenly between them")
	flag.IntVar(&o.concurrency, "c", 12, "manager concurrency (orders in flight; Pebble wedges above 16)")
	flag.DurationVar(&o.poll, "poll", 5*time.Millisecond, "how often the agents' fullchain.pem files are stat'ed")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "pause after the initial sync, so every agent is in its long-poll")
	flag.DurationVar(&o.issueTimeout, "issue-timeout", 5*time.Minute, "limit for the first issuance of all certificates")
	flag.DurationVar(&o.syncTimeout, "sync-timeout", 2*time.Minute, "limit for the agents' initial sync")
	flag.DurationVar(&o.renewTimeout, "renew-timeout", 5*time.Minute, "limit for the renewal reaching every agent")
	flag.StringVar(&o.dir, "dir", "", "scratch directory (default: a temporary one, removed afterwards)")
	flag.BoolVar(&o.verbose, "v", false, "log the manager's, the API's and the agents' warnings to stderr")
	flag.Parse()
	if o.n < 1 || o.agents < 1 || o.agents > o.n || o.concurrency < 1 || o.concurrency > 16 || o.poll <= 0 {
		fmt.Fprintln(os.Stderr, "agentbench: need 1 <= -agents <= -n, 1 <= -c <= 16 and -poll > 0")
		os.Exit(2)
	}
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

// recorder is the manager's deployer: it keeps the newest issuance of each
// spec and wakes the API's long-polls, as the daemon's deployer does.
type recorder struct {
	changes *certfleet.Changes
	mu      sync.Mutex
	latest  map[string]certfleet.Issuance // by spec name; KeyPEM dropped
}

func (r *recorder) Deploy(_ context.Context, _ certfleet.CertificateSpec, iss certfleet.Issuance) error {
	iss.KeyPEM = nil
	r.mu.Lock()
	r.latest[iss.Spec] = iss
	r.mu.Unlock()
	r.changes.Notify()
	return nil
}

func (r *recorder) snapshot() map[string]certfleet.Issuance {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]certfleet.Issuance, len(r.latest))
	for k, v := range r.latest {
		out[k] = v
	}
	return out
}

// cert is one certificate of the benchmark and the agent file it lands in.
type cert struct {
	spec, name string
	fullchain  string
	agent      int
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "agentbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	fmt.Printf("agentbench: %d certificates, %d agents, manager concurrency %d, file poll %v; load average %s\n",
		o.n, o.agents, o.concurrency, o.poll, loadavg())
	fmt.Printf("  reproduce: %s\n", strings.TrimSpace("go run ./internal/cmd/agentbench "+strings.Join(os.Args[1:], " ")))

	// The CA, validating http-01 against our responder on loopback.
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for http-01: %w", err)
	}
	ca, err := pebbleca.Start(ctx, pebbleca.Config{Concurrent: true, HTTPPort: httpLn.Addr().(*net.TCPAddr).Port})
	if err != nil {
		return fmt.Errorf("start pebble: %w", err)
	}
	defer ca.Close()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "certfleet.db"))
	if err != nil {
		return fmt.Errorf("open the store in %s: %w", dir, err)
	}
	defer store.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait
	tokens := &http01.Tokens{}
	wg.Go(func() { (&http01.Responder{Store: store, Tokens: tokens}).Serve(ctx, httpLn) })
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(), TrustedRootsPEM: ca.TLSRootPEM(), Accounts: store,
		Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: &http01.Solver{Store: store, Tokens: tokens}},
		PollInterval: 50 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("acme issuer: %w", err)
	}
	changes := &certfleet.Changes{}
	rec := &recorder{changes: changes, latest: map[string]certfleet.Issuance{}}
	mgr := &manager.Manager{Store: store, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		Deployer: rec, Concurrency: o.concurrency, PollInterval: time.Second, Logger: logger}
	wg.Go(func() { mgr.Run(ctx) })
	api := &httpapi.Server{Store: store, Changes: changes, Wake: mgr.Wake, Logger: logger}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the API: %w", err)
	}
	hs := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(apiLn)
	defer hs.Close()
	baseURL := "http://" + apiLn.Addr().String()

	// The specs, split between the agents in contiguous blocks.
	certs := make([]cert, o.n)
	specs := make([]certfleet.CertificateSpec, o.n)
	for i := range specs {
		a := i * o.agents / o.n
		name := fmt.Sprintf("host%04d.agent%02d.bench.test", i, a)
		id, err := certfleet.ParseIdentifier(name)
		if err != nil {
			return err
		}
		spec := fmt.Sprintf("host%04d", i)
		specs[i] = certfleet.CertificateSpec{Name: spec, Identifiers: []certfleet.Identifier{id},
			KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceConfig}
		certs[i] = cert{spec: spec, name: name, agent: a,
			fullchain: filepath.Join(dir, fmt.Sprintf("agent%02d", a), spec, "fullchain.pem")}
	}
	start := time.Now()
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		return fmt.Errorf("declare %d specs: %w", o.n, err)
	}
	mgr.Wake()
	if err := waitUntil(o.issueTimeout, "the first issuance of every certificate", func() (bool, string) {
		got := len(rec.snapshot())
		return got == o.n, fmt.Sprintf("%d of %d issued", got, o.n)
	}); err != nil {
		return err
	}
	first := rec.snapshot()
	fmt.Printf("  first issuance: %d certificates in %v\n", o.n, time.Since(start).Round(time.Millisecond))

	// The agents, each with a token for exactly its names.
	runCtx, stopAgents := context.WithCancel(ctx)
	var agentsWG sync.WaitGroup
	defer agentsWG.Wait()
	defer stopAgents()
	for a := range o.agents {
		var names []string
		var acs []agent.Certificate
		adir := filepath.Join(dir, fmt.Sprintf("agent%02d", a))
		for _, c := range certs {
			if c.agent != a {
				continue
			}
			names = append(names, c.name)
			acs = append(acs, agent.Certificate{Name: c.name, Files: agent.Files{Fullchain: c.fullchain,
				Key: filepath.Join(filepath.Dir(c.fullchain), "privkey.pem")}})
		}
		id, secret, hash := certfleet.NewTokenSecret()
		if err := store.CreateToken(ctx, certfleet.Token{ID: id, Description: fmt.Sprintf("agentbench agent %d", a), Names: names,
			Permissions: []certfleet.Permission{certfleet.PermReadCerts, certfleet.PermReadKeys}, Hash: hash, CreatedAt: time.Now()}); err != nil {
			return fmt.Errorf("token for agent %d: %w", a, err)
		}
		ag, err := agent.New(agent.Config{Name: fmt.Sprintf("bench-%02d", a), Client: &httpapi.Client{BaseURL: baseURL, Token: secret},
			StateDir: filepath.Join(adir, "state"), Certificates: acs, MaxBackoff: time.Second, Logger: logger})
		if err != nil {
			return fmt.Errorf("agent %d: %w", a, err)
		}
		agentsWG.Go(func() { ag.Run(runCtx) })
	}
	start = time.Now()
	if err := waitUntil(o.syncTimeout, "the agents' initial sync", func() (bool, string) {
		n := 0
		for _, c := range certs {
			if fileFingerprint(c.fullchain) == first[c.spec].Fingerprint {
				n++
			}
		}
		return n == o.n, fmt.Sprintf("%d of %d files in place", n, o.n)
	}); err != nil {
		return err
	}
	fmt.Printf("  initial sync: %d agents, %d files in %v\n", o.agents, o.n, time.Since(start).Round(time.Millisecond))
	time.Sleep(o.settle)
	before := make([]fileID, o.n)
	for i, c := range certs {
		if before[i], err = stat(c.fullchain); err != nil {
			return err
		}
	}

	// The renewal of all at once: every spec changes revision in one sync.
	for i := range specs {
		specs[i].Profile = pebbleca.DefaultProfile
	}
	renewStart := time.Now()
	res, err := store.SyncSpecs(ctx, certfleet.SourceConfig, specs)
	if err != nil {
		return fmt.Errorf("change %d specs: %w", o.n, err)
	}
	if len(res.Changed) != o.n {
		return fmt.Errorf("changing the profile changed %d specs, want %d: %s", len(res.Changed), o.n, res)
	}
	mgr.Wake()
	fmt.Printf("  renewal of all %d started (load average %s)\n", o.n, loadavg())

	seen := make([]time.Time, o.n) // when the replaced file was first seen
	pending := o.n
	deadline := time.Now().Add(o.renewTimeout)
	tick := time.NewTicker(o.poll)
	defer tick.Stop()
	for pending > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for the renewal to reach the agents: %d of %d files still old, %d of %d renewed certificates stored (rerun with -v for the components' warnings)",
				o.renewTimeout, pending, o.n, renewedCount(rec.snapshot(), first), o.n)
		}
		<-tick.C
		for i, c := range certs {
			if !seen[i].IsZero() {
				continue
			}
			now := time.Now()
			id, err := stat(c.fullchain)
			if err != nil || id == before[i] {
				continue
			}
			seen[i] = now
			pending--
		}
	}
	spread := time.Since(renewStart)

	// Check every file holds its new certificate, and compute latencies.
	latest := rec.snapshot()
	lat := make([]time.Duration, 0, o.n)
	var firstIssued, lastIssued time.Time
	for i, c := range certs {
		cur, ok := latest[c.spec]
		if !ok || cur.ID == first[c.spec].ID {
			return fmt.Errorf("%s was replaced on agent %d before its renewal was stored", c.fullchain, c.agent)
		}
		if fp := fileFingerprint(c.fullchain); fp != cur.Fingerprint {
			return fmt.Errorf("%s holds %q, not the renewed certificate %q", c.fullchain, fp, cur.Fingerprint)
		}
		d := seen[i].Sub(cur.IssuedAt)
		if d < 0 {
			return fmt.Errorf("%s: file seen %v before its issuance %d was stored (IssuedAt %v)", c.fullchain, -d, cur.ID, cur.IssuedAt)
		}
		lat = append(lat, d)
		if firstIssued.IsZero() || cur.IssuedAt.Before(firstIssued) {
			firstIssued = cur.IssuedAt
		}
		if cur.IssuedAt.After(lastIssued) {
			lastIssued = cur.IssuedAt
		}
	}
	slices.Sort(lat)
	fmt.Printf("  renewal: all %d renewed and on disk %v after the spec change (issuances stored over %v)\n",
		o.n, spread.Round(time.Millisecond), lastIssued.Sub(firstIssued).Round(time.Millisecond))
	fmt.Printf("  stored -> on agent's disk (n=%d): median %v  p90 %v  p99 %v  max %v  min %v\n", len(lat),
		pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1].Round(100*time.Microsecond), lat[0].Round(100*time.Microsecond))
	med, p99 := pct(lat, 50), pct(lat, 99)
	verdict := "met"
	if med >= time.Second || p99 >= 5*time.Second {
		verdict = "MISSED"
	}
	fmt.Printf("  target median < 1s, p99 < 5s: %s; load average %s\n", verdict, loadavg())
	return nil
}

// pct is the p-th percentile (nearest rank) of sorted d.
func pct(d []time.Duration, p int) time.Duration {
	i := (p*len(d) + 99) / 100
	return d[max(i-1, 0)].Round(100 * time.Microsecond)
}

func renewedCount(latest, first map[string]certfleet.Issuance) int {
	n := 0
	for spec, iss := range latest {
		if iss.ID != first[spec].ID {
			n++
		}
	}
	return n
}

// fileID tells a file replaced by rename from the one it replaced.
type fileID struct {
	ino   uint64
	mtime int64
}

func stat(path string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return fileID{ino: st.Ino, mtime: st.Mtim.Nano()}, nil
}

// fileFingerprint is the fingerprint of the leaf in a PEM file, "" if none.
func fileFingerprint(path string) string {
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

// waitUntil polls cond every 50 ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s (%s); rerun with -v for the components' warnings, or raise the phase's -*-timeout", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
