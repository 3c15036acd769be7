package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// serveBench measures the real `certfleet serve` (issue 13): the binary,
// built from this checkout (or bin), on a store already holding n issued names
// (SQLite with a master key, or PostgreSQL with dsn), its scheduler and
// API running against an in-process Pebble. It measures, in one run:
//
//   - idle, at n names: GET fullchain of an issued name with wrk, next to
//     nginx serving the same bytes (the ratio of §4);
//   - 8 PUT clients declaring declare more names through the API, which
//     the scheduler orders from Pebble (real http-01) while the PUTs go on:
//     the PUT rate per tenth of them, and the latency of GET fullchain
//     from serve and from nginx, one closed-loop reader each, while PUTs
//     and issuance run and then while issuance alone runs;
//   - the orders at the CA (at most one per declared name), until every
//     declared name is issued or issueWait has passed after the PUTs;
//   - serve's RSS, sampled from /proc every 500 ms throughout;
//   - with profDir, serve's CPU profile during the PUTs and its heap at
//     their end (through daemon.PprofEnv), for go tool pprof.
func serveBench(n, declare int, dsn string, wrkDur, issueWait time.Duration, bin, profDir string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "apibench-serve")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if bin == "" {
		bin = filepath.Join(dir, "certfleet")
		fmt.Fprintln(os.Stderr, "building certfleet ...")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/certfleet").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/certfleet (run apibench from the repository's root): %v: %s", err, out)
		}
	}
	keyFile := filepath.Join(dir, "master.key")
	if out, err := exec.Command(bin, "master-key", "generate", keyFile).CombinedOutput(); err != nil {
		return fmt.Errorf("certfleet master-key generate: %v: %s", err, out)
	}

	// The CA, validating http-01 on serve's responder.
	httpPort, apiPort := freePort(), freePort()
	// Pebble serves one request at a time (its harness default): v2.10.1
	// deadlocks under concurrent requests in long runs.
	ca, err := pebbleca.Start(ctx, pebbleca.Config{HTTPPort: httpPort})
	if err != nil {
		return fmt.Errorf("start pebble: %w", err)
	}
	defer ca.Close()
	roots := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(roots, ca.TLSRootPEM(), 0o644); err != nil {
		return err
	}
	state, kind := filepath.Join(dir, "certfleet.db"), "SQLite (master key)"
	if dsn != "" {
		state, kind = dsn, "PostgreSQL (master key)"
	}
	cfgPath := filepath.Join(dir, "certfleet.toml")
	cfg := fmt.Sprintf(`state = %q
master_key_file = %q
[log]
level = "warn"
[ca]
directory = %q
trusted_roots = %q
[http01]
listen = "127.0.0.1:%d"
[tlsalpn01]
listen = ""
[api]
listen = "127.0.0.1:%d"
[defaults]
output_dir = %q
[self_test]
resolvers = [%q]
http_port = %d
`, state, keyFile, ca.DirectoryURL(), roots, httpPort, apiPort, filepath.Join(dir, "live"), ca.ResolverAddr(), httpPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}

	// The store: n issued names, one more to read, the benchmark's token.
	fmt.Fprintf(os.Stderr, "filling the store with %d issued names ...\n", n)
	const issued = "bench.example.org"
	fillStart := time.Now()
	chain, secret, err := fillStore(ctx, state, keyFile, n, issued)
	if err != nil {
		return err
	}
	fill := time.Since(fillStart)

	// serve.
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	serve := exec.Command(bin, "serve", "-config", cfgPath)
	serve.Stdout, serve.Stderr = logf, logf
	pprofURL := ""
	if profDir != "" {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort())
		serve.Env = append(os.Environ(), daemon.PprofEnv+"="+addr)
		pprofURL = "http://" + addr + "/debug/pprof/"
	}
	if err := serve.Start(); err != nil {
		return fmt.Errorf("start certfleet serve: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Signal(os.Interrupt)
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
			<-served
		}
	}()
	rss := &rssSampler{pid: serve.Process.Pid}
	go rss.run(ctx)

	base := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
	do := func(method, url string, auth bool) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, method, url, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	fullchain := base + "/v1/names/" + issued + "/fullchain"
	startup := time.Now()
	for {
		code, err := do("GET", fullchain, true)
		if err == nil && code == 200 {
			break
		}
		select {
		case err := <-served:
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("certfleet serve exited (%v):\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(startup) > 5*time.Minute {
			return fmt.Errorf("certfleet serve did not answer GET fullchain within 5 minutes (last: %d %v)", code, err)
		}
	}
	ready := time.Since(startup)
	nginxURL, stopNginx, err := startNginx(ctx, dir, chain)
	if err != nil {
		return err
	}
	defer stopNginx()
	fmt.Printf("certfleet serve, store %s, %d issued names, then %d declared by 8 PUT clients; GOMAXPROCS=%d; %s\n",
		kind, n, declare, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("fill %s; serve answered after %s; RSS at start %s\n", fill.Round(time.Second), ready.Round(time.Millisecond), kb(rss.last()))

	// Idle, at n names: wrk against serve, then nginx (§4's measure).
	api, err := wrk(fullchain, "Authorization: Bearer "+secret, wrkDur, 64, 2)
	if err != nil {
		return err
	}
	ng, err := wrk(nginxURL, "", wrkDur, 64, 2)
	if err != nil {
		return err
	}
	fmt.Printf("idle GET fullchain, wrk -t2 -c64 -d%s: serve %.0f req/s p99 %s; nginx %.0f req/s p99 %s; ratio %.2fx\n",
		wrkDur, api.rps, api.p99, ng.rps, ng.p99, api.rps/ng.rps)
	fmt.Printf("RSS after the idle GETs: %s (peak so far %s)\n", kb(rss.last()), kb(rss.peak()))

	// Under load: readers while PUTs and issuance run.
	var phase atomic.Int32 // 0: PUTs and issuance, 1: issuance alone, 2: stop
	var lat [2][2][]time.Duration
	var wg sync.WaitGroup
	reader := func(i int, url string, auth bool) {
		defer wg.Done()
		for {
			p := phase.Load()
			if p >= 2 {
				return
			}
			t0 := time.Now()
			if code, err := do("GET", url, auth); err != nil || code != 200 {
				fmt.Fprintf(os.Stderr, "GET %s: %d %v\n", url, code, err)
				return
			}
			lat[p][i] = append(lat[p][i], time.Since(t0))
			time.Sleep(2 * time.Millisecond) // a reader, not a load generator
		}
	}
	ordersBefore := ca.NewOrders()
	wg.Add(2)
	go reader(0, fullchain, true)
	go reader(1, nginxURL, false)

	slice := max(1, declare/10)
	var next, failed atomic.Int64
	var sliceMu sync.Mutex
	sliceDone := make([]int, (declare+slice-1)/slice)
	sliceEnd := make([]time.Time, len(sliceDone))
	start := time.Now()
	var pw sync.WaitGroup
	profiled := make(chan error, 1)
	if pprofURL != "" {
		// 2 s in, for 15 s: the PUTs at 100,000 names take longer.
		go func() {
			time.Sleep(2 * time.Second)
			profiled <- fetchProfile(ctx, pprofURL+"profile?seconds=15", filepath.Join(profDir, "serve-cpu.pprof"))
		}()
	}
	for range 8 {
		pw.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= declare {
					return
				}
				code, err := do("PUT", fmt.Sprintf("%s/v1/names/p%06d.bench.test", base, i), true)
				if err != nil || (code != 200 && code != 202) {
					if failed.Add(1) <= 5 {
						fmt.Fprintf(os.Stderr, "PUT %d: %d %v\n", i, code, err)
					}
				}
				sliceMu.Lock()
				if sliceDone[i/slice]++; sliceDone[i/slice] == min(slice, declare-i/slice*slice) {
					sliceEnd[i/slice] = time.Now()
				}
				sliceMu.Unlock()
			}
		})
	}
	pw.Wait()
	putTime := time.Since(start)
	rssPuts := rss.peak()
	if pprofURL != "" {
		if err := fetchProfile(ctx, pprofURL+"heap", filepath.Join(profDir, "serve-heap.pprof")); err != nil {
			return err
		}
		if err := <-profiled; err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "serve's profiles: %s/serve-{cpu,heap}.pprof\n", profDir)
	}
	phase.Store(1)
	ordersAtPutEnd := ca.NewOrders() - ordersBefore
	fmt.Printf("\nPUT /v1/names/{h}: %d in %s = %.0f/s overall (names %d → %d)\n", declare, putTime.Round(time.Millisecond), float64(declare)/putTime.Seconds(), n, n+declare)
	prev := start
	var rates []float64
	for i, end := range sliceEnd {
		cnt := min(slice, declare-i*slice)
		r := float64(cnt) / end.Sub(prev).Seconds()
		rates = append(rates, r)
		fmt.Printf("  names %6d-%6d: %6.0f/s\n", i*slice, i*slice+cnt, r)
		prev = end
	}
	if len(rates) > 1 {
		fmt.Printf("  last tenth / first tenth: %.2fx\n", rates[len(rates)-1]/rates[0])
	}
	if f := failed.Load(); f > 0 {
		fmt.Printf("  %d PUTs failed\n", f)
	}
	fmt.Printf("orders at the CA while the PUTs ran: %d\n", ordersAtPutEnd)

	// Issuance alone, until every declared name has its order finalized
	// or issueWait has passed.
	bound := time.Now().Add(issueWait)
	for ca.Finalizations() < int64(declare) && time.Now().Before(bound) {
		time.Sleep(time.Second)
	}
	issueTime := time.Since(start)
	time.Sleep(2 * time.Second) // the last certificates' writes
	phase.Store(2)
	wg.Wait()
	orders := ca.NewOrders() - ordersBefore
	fmt.Printf("issuance: %d orders finalized at the CA %s after the first PUT; %d orders for %d declared names", ca.Finalizations(), issueTime.Round(time.Second), orders, declare)
	if orders == int64(declare) && ca.Finalizations() == int64(declare) {
		fmt.Printf(" (exactly one each)")
	}
	fmt.Println()
	for p, what := range []string{"while PUTs and issuance ran", "while issuance alone ran"} {
		a, g := lat[p][0], lat[p][1]
		fmt.Printf("GET fullchain %s: serve p50 %s p99 %s (%d); nginx p50 %s p99 %s (%d)\n",
			what, pct(a, 50), pct(a, 99), len(a), pct(g, 50), pct(g, 99), len(g))
	}
	if b, err := os.ReadFile(logf.Name()); err == nil && len(b) > 0 {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fmt.Fprintf(os.Stderr, "serve's log (level warn): %d lines; the last:\n%s\n", len(lines), strings.Join(lines[max(0, len(lines)-10):], "\n"))
	}
	fmt.Printf("serve RSS: peak %s during the PUTs, %s at the end, peak %s over the run (VmHWM %s); %d samples\n",
		kb(rssPuts), kb(rss.last()), kb(rss.peak()), kb(procStatusKB(serve.Process.Pid, "VmHWM")), rss.count())
	return nil
}

// fillStore opens the store at state as serve does (with the master key in
// keyFile) and fills it with n names, each with its own issued certificate
// (a synthetic chain; renewals spread over 60 days, none due), plus name
// with a real-looking chain to read; it creates an admin token and returns
// the chain of name and the token's secret.
func fillStore(ctx context.Context, state, keyFile string, n int, name string) ([]byte, string, error) {
	keys, err := daemon.LoadKeys(config.MasterKey{File: keyFile}, "")
	if err != nil {
		return nil, "", err
	}
	st, err := daemon.OpenStore(ctx, state, keys, nil)
	if err != nil {
		return nil, "", err
	}
	defer st.Close()
	store, ok := st.(httpapi.Store)
	if !ok {
		return nil, "", fmt.Errorf("store %T lacks the API's methods", st)
	}
	chain, err := seedIssued(ctx, store, name)
	if err != nil {
		return nil, "", fmt.Errorf("seed %s: %w", name, err)
	}
	id, secret, hash := certfleet.NewTokenSecret()
	if err := store.CreateToken(ctx, certfleet.Token{ID: id, Names: []string{"*"}, Permissions: []certfleet.Permission{certfleet.PermAdmin}, Hash: hash}); err != nil {
		return nil, "", err
	}
	fillChain, fillKey, err := testChain("fill.example")
	if err != nil {
		return nil, "", err
	}
	block, _ := pem.Decode(fillChain)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, "", err
	}
	specs := make([]certfleet.CertificateSpec, n)
	byName := make(map[string]*certfleet.CertificateSpec, n)
	for i := range specs {
		h := fmt.Sprintf("h%06d.fill.example", i)
		specs[i] = certfleet.CertificateSpec{Name: h, Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: h}},
			KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceAPI}
		byName[h] = &specs[i]
	}
	// PutSpecs in batches, as the API writes them (SyncSpecs of the
	// source "api" would withdraw the name seeded above).
	bw, ok := st.(certfleet.SpecBatchWriter)
	if !ok {
		return nil, "", fmt.Errorf("store %T cannot put specs in batches", st)
	}
	for lo := 0; lo < n; lo += 1000 {
		puts := make([]certfleet.SpecPut, 0, 1000)
		for _, sp := range specs[lo:min(n, lo+1000)] {
			puts = append(puts, certfleet.SpecPut{Spec: sp})
		}
		res, err := bw.PutSpecs(ctx, puts)
		if err != nil {
			return nil, "", err
		}
		for _, r := range res {
			if r.Err != nil {
				return nil, "", r.Err
			}
		}
	}
	// Every job claimed once and completed with its own spec's
	// identifiers and revision, 8 at a time (PostgreSQL groups their
	// commits).
	now := time.Now()
	var done atomic.Int64
	jobs := make(chan certfleet.Job)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				sp := byName[j.Spec]
				i := done.Add(1)
				iss := certfleet.Issuance{Spec: j.Spec, KeyType: j.KeyType, SpecRevision: sp.Revision(j.KeyType), Identifiers: sp.Identifiers,
					Serial: fmt.Sprintf("%x", 1000+i), Fingerprint: certfleet.Fingerprint(leaf), NotBefore: leaf.NotBefore, NotAfter: now.Add(90 * 24 * time.Hour),
					ChainPEM: fillChain, KeyPEM: fillKey, IssuedAt: now}
				next := now.Add(time.Duration(1+i%5760) * 15 * time.Minute)
				if _, err := store.CompleteIssuance(ctx, "fill", iss, certfleet.ScheduleUpdate{NextAt: next},
					certfleet.Attempt{JobKey: j.JobKey, Instance: "fill", Outcome: certfleet.OutcomeIssued, StartedAt: now, FinishedAt: now}); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		})
	}
	var claimErr error
	for claimErr == nil {
		batch, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "fill", Now: now.Add(time.Second), Lease: time.Hour, Limit: 256})
		if err != nil {
			claimErr = err
			break
		}
		if len(batch) == 0 {
			break
		}
		for _, j := range batch {
			if byName[j.Spec] == nil {
				claimErr = fmt.Errorf("claimed job %s of no spec written here", j.JobKey)
				break
			}
			jobs <- j
		}
		if d := done.Load(); d/10000 != (d+int64(len(batch)))/10000 {
			fmt.Fprintf(os.Stderr, "  %d filled\n", d)
		}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	if err := errors.Join(claimErr, <-errc); err != nil {
		return nil, "", fmt.Errorf("fill: %w", err)
	}
	if d := done.Load(); d != int64(n) {
		return nil, "", fmt.Errorf("fill: %d certificates completed, want %d", d, n)
	}
	return chain, secret, nil
}

// fetchProfile saves the profile at url in file.
func fetchProfile(ctx context.Context, url, file string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return os.WriteFile(file, b, 0o644)
}

// rssSampler reads a process's VmRSS every 500 ms.
type rssSampler struct {
	pid int
	mu  sync.Mutex // guards max, cur, n
	max int64
	cur int64
	n   int
}

func (r *rssSampler) run(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if v := procStatusKB(r.pid, "VmRSS"); v > 0 {
			r.mu.Lock()
			r.cur, r.max, r.n = v, max(r.max, v), r.n+1
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *rssSampler) last() int64 { r.mu.Lock(); defer r.mu.Unlock(); return r.cur }
func (r *rssSampler) peak() int64 { r.mu.Lock(); defer r.mu.Unlock(); return r.max }
func (r *rssSampler) count() int  { r.mu.Lock(); defer r.mu.Unlock(); return r.n }

// procStatusKB reads a "kB" field of /proc/PID/status (0 when unknown).
func procStatusKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func kb(v int64) string { return fmt.Sprintf("%.0f MB", float64(v)/1024) }

// freePort returns a loopback port free at the time of asking.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
