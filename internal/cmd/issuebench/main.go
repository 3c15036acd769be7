// Command issuebench measures certfleet against references on this machine,
// for BENCHMARKS.md. Each measurement runs in its own child process, so its
// wall time, CPU time (user+system, from the kernel's rusage) and peak
// resident memory are its own.
//
//	go run ./internal/cmd/issuebench -n 1000 -c 16        # certfleet vs bare acmez, 1,000 certificates
//	go run ./internal/cmd/issuebench -store 100000        # due-work lookup, daemon memory and the rounds' memory with 100,000 certificates
//	go run ./internal/cmd/issuebench -n 100000 -reference=false -serial-ca -timeout 3h   # certfleet only, progress on stderr
//
// Issuance runs against an in-process Pebble with real http-01 validation
// over loopback. Both clients share the process with their Pebble, so the CPU
// figures include Pebble's work in both.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/sqlite"
)

// result is what one child process reports.
type result struct {
	Mode     string        `json:"mode"`
	N        int           `json:"n"`
	Issued   int           `json:"issued"`
	Wall     time.Duration `json:"wall"`
	Extra    string        `json:"extra,omitempty"`
	CPU      time.Duration `json:"cpu"`       // filled in by the parent
	MaxRSSKB int64         `json:"maxrss_kb"` // filled in by the parent
}

func main() {
	mode := flag.String("mode", "", "internal: the measurement a child runs")
	n := flag.Int("n", 1000, "certificates to issue")
	c := flag.Int("c", 16, "orders in flight (Pebble wedges above 16)")
	poll := flag.Duration("poll", 50*time.Millisecond, "ACME poll interval, the same for both clients")
	store := flag.Int("store", 0, "if set: measure the due-work lookup and daemon memory with this many certificates in the store")
	dir := flag.String("dir", "", "scratch directory (default: a temporary one)")
	timeout := flag.Duration("timeout", 5*time.Minute, "bound of each measurement (a child process)")
	reference := flag.Bool("reference", true, "also run the bare acmez client (the reference) before certfleet")
	serialCA := flag.Bool("serial-ca", false, "let Pebble serve one request at a time (it wedges in long runs otherwise)")
	flag.Parse()
	childTimeout, caSerial = *timeout, *serialCA
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")

	if *mode != "" {
		res, err := runChild(*mode, *n, *c, *poll, *dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "issuebench %s: %v\n", *mode, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	scratch := *dir
	if scratch == "" {
		var err error
		if scratch, err = os.MkdirTemp("", "issuebench"); err != nil {
			fatal(err)
		}
		defer os.RemoveAll(scratch)
	}
	if *store > 0 {
		fmt.Printf("store benchmark: %d certificates\n", *store)
		pop := child("populate", *store, *c, *poll, scratch)
		fmt.Printf("  populate:          %v wall (%s)\n", pop.Wall.Round(time.Millisecond), pop.Extra)
		d := child("daemon", *store, *c, *poll, scratch)
		fmt.Printf("  find due work:     %s\n", d.Extra)
		fmt.Printf("  daemon peak RSS:   %.1f MB (store open, scheduler running %v, responder up)\n", float64(d.MaxRSSKB)/1024, d.Wall.Round(time.Second))
		l := child("loops", *store, *c, *poll, scratch)
		fmt.Printf("  scheduler loops:   %s\n", l.Extra)
		fmt.Printf("  loops peak RSS:    %.1f MB (scheduler, alert rounds and readiness checks each second for %v)\n", float64(l.MaxRSSKB)/1024, l.Wall.Round(time.Second))
		return
	}
	fmt.Printf("issuing %d single-name ECDSA P-256 certificates, %d in flight, real http-01, in-process Pebble, poll %v\n", *n, *c, *poll)
	var runs []result
	if *reference {
		runs = append(runs, child("acmez", *n, *c, *poll, scratch))
	}
	runs = append(runs, child("certfleet", *n, *c, *poll, scratch))
	for _, r := range runs {
		fmt.Printf("  %-10s issued %4d/%d  wall %7.2fs  cpu %7.2fs  peak RSS %6.1f MB  %s\n",
			r.Mode, r.Issued, r.N, r.Wall.Seconds(), r.CPU.Seconds(), float64(r.MaxRSSKB)/1024, r.Extra)
	}
	if len(runs) == 2 {
		a, b := runs[0], runs[1]
		fmt.Printf("  ratio certfleet/acmez: wall %.2fx, cpu %.2fx\n", b.Wall.Seconds()/a.Wall.Seconds(), b.CPU.Seconds()/a.CPU.Seconds())
	}
}

// childTimeout bounds each child's measurement (-timeout); caSerial is
// -serial-ca. Both are handed to the children as flags.
var (
	childTimeout = 5 * time.Minute
	caSerial     bool
)

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "issuebench:", err)
	os.Exit(1)
}

// child runs one measurement in a fresh process and adds its rusage.
func child(mode string, n, c int, poll time.Duration, dir string) result {
	cmd := exec.Command(os.Args[0], "-mode", mode, "-n", fmt.Sprint(n), "-c", fmt.Sprint(c), "-poll", poll.String(), "-dir", dir, "-timeout", childTimeout.String(), "-serial-ca="+strconv.FormatBool(caSerial))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fatal(fmt.Errorf("%s: %v", mode, err))
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		fatal(fmt.Errorf("%s: bad output %q: %v", mode, out, err))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	r.MaxRSSKB = ru.Maxrss
	return r
}

func runChild(mode string, n, c int, poll time.Duration, dir string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	switch mode {
	case "acmez":
		return runAcmez(ctx, n, c, poll)
	case "certfleet":
		return runCertfleet(ctx, n, c, poll, dir)
	case "populate":
		return populate(ctx, n, dir)
	case "daemon":
		return daemon(ctx, n, dir)
	case "loops":
		return loops(ctx, n, dir)
	}
	return result{}, fmt.Errorf("unknown mode %q", mode)
}

// startCA starts Pebble validating http-01 against a fresh loopback listener.
func startCA(ctx context.Context) (*pebbleca.CA, net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	// Concurrent as Pebble's own server, for the comparison with acmez;
	// -serial-ca for runs long enough to meet Pebble v2.10.1's deadlock
	// (a 20,000-certificate run wedged after 1,011 here).
	ca, err := pebbleca.Start(ctx, pebbleca.Config{Concurrent: !caSerial, HTTPPort: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		return nil, nil, err
	}
	return ca, ln, nil
}

// runCertfleet issues n certificates the way the daemon does: specs synced
// into a SQLite store, the manager's pass, acmeissuer, the store-backed
// http-01 solver and responder.
func runCertfleet(ctx context.Context, n, c int, poll time.Duration, dir string) (result, error) {
	ca, ln, err := startCA(ctx)
	if err != nil {
		return result{}, err
	}
	defer ca.Close()
	path := filepath.Join(dir, "certfleet-bench.db")
	os.Remove(path)
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		return result{}, err
	}
	defer store.Close()
	tokens := &http01.Tokens{}
	go (&http01.Responder{Store: store, Tokens: tokens}).Serve(ctx, ln)
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(), TrustedRootsPEM: ca.TLSRootPEM(), Accounts: store,
		Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: &http01.Solver{Store: store, Tokens: tokens}},
		PollInterval: poll,
	})
	if err != nil {
		return result{}, err
	}
	specs := make([]certfleet.CertificateSpec, n)
	for i := range specs {
		id, _ := certfleet.ParseIdentifier(fmt.Sprintf("host%d.bench.test", i))
		specs[i] = certfleet.CertificateSpec{Name: fmt.Sprintf("host%d", i), Identifiers: []certfleet.Identifier{id},
			KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceConfig}
	}
	start := time.Now()
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		return result{}, err
	}
	m := &manager.Manager{
		Store: store, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss}, Concurrency: c,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	// Progress on stderr, so that a long run that is cut short still
	// says how far it got.
	stop := make(chan struct{})
	defer close(stop)
	if n >= 10000 {
		go func() {
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					fmt.Fprintf(os.Stderr, "  certfleet: %s: CA orders %d, finalized %d\n", time.Since(start).Round(time.Second), ca.NewOrders(), ca.Finalizations())
				}
			}
		}()
	}
	rep, err := m.RunOnce(ctx)
	if err != nil {
		return result{}, err
	}
	wall := time.Since(start)
	orders := ca.NewOrders()
	extra := fmt.Sprintf("(CA orders %d", orders)
	if rep.Issued == n && orders == int64(n) {
		extra += ": exactly one per certificate"
	}
	extra += fmt.Sprintf("; failed %d)", rep.Failed)
	return result{Mode: "certfleet", N: n, Issued: rep.Issued, Wall: wall, Extra: extra}, nil
}

// memSolver is the bare client's http-01 solver: a map served over HTTP.
type memSolver struct{ m sync.Map }

func (s *memSolver) Present(_ context.Context, ch acme.Challenge) error {
	s.m.Store(ch.Token, ch.KeyAuthorization)
	return nil
}
func (s *memSolver) CleanUp(_ context.Context, ch acme.Challenge) error {
	s.m.Delete(ch.Token)
	return nil
}
func (s *memSolver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := filepath.Base(r.URL.Path)
	if v, ok := s.m.Load(tok); ok {
		io.WriteString(w, v.(string))
		return
	}
	http.NotFound(w, r)
}

// runAcmez is the reference: acmez's own porcelain, c goroutines issuing n
// certificates in all, with the same poll interval and a map-backed solver.
func runAcmez(ctx context.Context, n, c int, poll time.Duration) (result, error) {
	ca, ln, err := startCA(ctx)
	if err != nil {
		return result{}, err
	}
	defer ca.Close()
	solver := &memSolver{}
	srv := &http.Server{Handler: solver}
	go srv.Serve(ln)
	defer srv.Close()
	client := &acmez.Client{
		Client: &acme.Client{
			Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), PollInterval: poll,
		},
		ChallengeSolvers: map[string]acmez.Solver{acme.ChallengeTypeHTTP01: solver},
	}
	start := time.Now()
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return result{}, err
	}
	account, err := client.NewAccount(ctx, acme.Account{PrivateKey: accountKey, TermsOfServiceAgreed: true})
	if err != nil {
		return result{}, err
	}
	var next, issued atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err == nil {
					_, err = client.ObtainCertificateForSANs(ctx, account, key, []string{fmt.Sprintf("host%d.bench.test", i)})
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				issued.Add(1)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	extra := fmt.Sprintf("(CA orders %d)", ca.NewOrders())
	if e := firstErr.Load(); e != nil {
		extra += fmt.Sprintf(" first error: %v", e)
	}
	return result{Mode: "acmez", N: n, Issued: int(issued.Load()), Wall: wall, Extra: extra}, nil
}

// populate fills a store with n issued certificates (a synthetic chain of
// realistic size; their content does not matter to the scheduler).
func populate(ctx context.Context, n int, dir string) (result, error) {
	path := filepath.Join(dir, "store100k.db")
	os.Remove(path)
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		return result{}, err
	}
	defer store.Close()
	start := time.Now()
	specs := make([]certfleet.CertificateSpec, n)
	for i := range specs {
		id, _ := certfleet.ParseIdentifier(fmt.Sprintf("host%d.bench.test", i))
		specs[i] = certfleet.CertificateSpec{Name: fmt.Sprintf("host%d", i), Identifiers: []certfleet.Identifier{id},
			KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceAPI}
	}
	if _, err := store.SyncSpecs(ctx, certfleet.SourceAPI, specs); err != nil {
		return result{}, err
	}
	byName := make(map[string]*certfleet.CertificateSpec, n)
	for i := range specs {
		byName[specs[i].Name] = &specs[i]
	}
	chain, keyPEM, leaf, err := syntheticChain()
	if err != nil {
		return result{}, err
	}
	const batch = 256
	now := time.Now()
	// Every job is claimed once: the ones scheduled due are due only
	// after the fill (a second after its clock), so the fill's own
	// claims never take them again.
	for done := 0; done < n; {
		jobs, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "populate", Now: now, Lease: time.Hour, Limit: batch})
		if err != nil {
			return result{}, err
		}
		if len(jobs) == 0 {
			break
		}
		for k, j := range jobs {
			// Each certificate carries its own spec's identifiers and
			// revision: one of another spec would make the job outdated,
			// and the scheduler would take it as due at once.
			sp, ok := byName[j.Spec]
			if !ok {
				return result{}, fmt.Errorf("populate: claimed job %s of no spec written here", j.JobKey)
			}
			iss := certfleet.Issuance{
				Spec: j.Spec, KeyType: j.KeyType, SpecRevision: sp.Revision(j.KeyType), Identifiers: sp.Identifiers,
				Serial: leaf.SerialNumber.Text(16), Fingerprint: certfleet.Fingerprint(leaf), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
				ChainPEM: chain, KeyPEM: keyPEM, IssuedAt: now,
			}
			// Spread renewals over the next 60 days; 1% are due once
			// the fill is over.
			i := done + k
			next := now.Add(time.Duration(1+i%6000) * 15 * time.Minute)
			if i%100 == 0 {
				next = now.Add(time.Second)
			}
			if _, err := store.CompleteIssuance(ctx, "populate", iss, certfleet.ScheduleUpdate{NextAt: next},
				certfleet.Attempt{JobKey: j.JobKey, Outcome: certfleet.OutcomeIssued, StartedAt: now, FinishedAt: now}); err != nil {
				return result{}, err
			}
		}
		done += len(jobs)
	}
	fi, _ := os.Stat(path)
	size := int64(0)
	if fi != nil {
		size = fi.Size()
	}
	return result{Mode: "populate", N: n, Wall: time.Since(start), Extra: fmt.Sprintf("database %.0f MB", float64(size)/(1<<20))}, nil
}

// daemon opens the populated store as serve does, times the due-work queries
// the scheduler runs, and keeps the scheduler and a responder running for a
// while so the peak RSS is the daemon's.
func daemon(ctx context.Context, n int, dir string) (result, error) {
	store, err := sqlite.Open(ctx, filepath.Join(dir, "store100k.db"))
	if err != nil {
		return result{}, err
	}
	defer store.Close()
	start := time.Now()
	// What the scheduler will find due: 1% of the certificates, as the
	// fill scheduled them (a fill whose certificates did not match their
	// specs made nearly all of them due).
	stats, err := store.JobStats(ctx, time.Now())
	if err != nil {
		return result{}, err
	}
	// The lookups the scheduler makes each time it wakes: the next due
	// time, and a claim of due work (released again, so every sample sees
	// the same 1% of due jobs).
	var nextDue, claim []time.Duration
	for range 50 {
		t0 := time.Now()
		if _, _, err := store.NextDue(ctx); err != nil {
			return result{}, err
		}
		t1 := time.Now()
		jobs, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: time.Now(), Lease: time.Minute, Limit: 16})
		if err != nil {
			return result{}, err
		}
		t2 := time.Now()
		nextDue, claim = append(nextDue, t1.Sub(t0)), append(claim, t2.Sub(t1))
		for _, j := range jobs {
			store.ReleaseLease(ctx, j.JobKey, "bench")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go (&http01.Responder{Store: store}).Serve(runCtx, ln)
	// A scheduler with no reachable CA: due jobs fail fast and back off,
	// as in a daemon whose CA is down, which is the busiest idle state.
	m := &manager.Manager{
		Store: store, Issuers: map[string]certfleet.Issuer{}, Concurrency: 8, PollInterval: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if _, err := m.ReleaseLeases(ctx, func(string) bool { return false }); err != nil {
		return result{}, err
	}
	m.Run(runCtx)
	return result{Mode: "daemon", N: n, Wall: time.Since(start),
		Extra: fmt.Sprintf("NextDue median %v p99 %v; ClaimDue(16) median %v p99 %v (%d jobs in store, %d due)",
			pct(nextDue, 50), pct(nextDue, 99), pct(claim, 50), pct(claim, 99), stats.Jobs, stats.Due)}, nil
}

// loopsFor is how long loops runs the rounds.
const loopsFor = 30 * time.Second

// loops opens the populated store as serve does and runs what serve runs
// per round besides the API, for loopsFor: the scheduler (the 1% due fail
// against no CA and back off), an alert round every second (the most
// often events wake it) and a readiness check every second (the metrics
// watcher's loop; its default interval is longer). Its peak RSS is what
// those rounds hold.
func loops(ctx context.Context, n int, dir string) (result, error) {
	store, err := sqlite.Open(ctx, filepath.Join(dir, "store100k.db"))
	if err != nil {
		return result{}, err
	}
	defer store.Close()
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, loopsFor)
	defer cancel()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := &manager.Manager{Store: store, Issuers: map[string]certfleet.Issuer{}, Concurrency: 8, PollInterval: time.Second, Logger: discard}
	ev := &alert.Evaluator{Store: store, Instance: "bench", Logger: discard}
	met := metrics.New(metrics.Options{Store: store, Fleet: store, Logger: discard})
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(runCtx) })
	var rounds, checks []time.Duration
	var roundErr, checkErr error
	wg.Go(func() {
		for runCtx.Err() == nil {
			t0 := time.Now()
			if _, err := ev.Evaluate(runCtx); err != nil && runCtx.Err() == nil {
				roundErr = err
				return
			}
			rounds = append(rounds, time.Since(t0))
			select {
			case <-runCtx.Done():
			case <-time.After(time.Second - time.Since(t0)):
			}
		}
	})
	wg.Go(func() {
		for runCtx.Err() == nil {
			t0 := time.Now()
			if _, err := met.CheckReadiness(runCtx); err != nil && runCtx.Err() == nil {
				checkErr = err
				return
			}
			checks = append(checks, time.Since(t0))
			select {
			case <-runCtx.Done():
			case <-time.After(time.Second - time.Since(t0)):
			}
		}
	})
	wg.Wait()
	if roundErr != nil || checkErr != nil {
		return result{}, fmt.Errorf("alert round: %v; readiness: %v", roundErr, checkErr)
	}
	if len(rounds) == 0 || len(checks) == 0 {
		return result{}, fmt.Errorf("no alert round (%d) or readiness check (%d) finished in %v", len(rounds), len(checks), loopsFor)
	}
	return result{Mode: "loops", N: n, Wall: time.Since(start),
		Extra: fmt.Sprintf("alert round first %v, median %v (%d rounds); readiness check median %v (%d)",
			rounds[0].Round(time.Millisecond), pct(rounds, 50), len(rounds), pct(checks, 50), len(checks))}, nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100].Round(time.Microsecond)
}

// syntheticChain makes a leaf and issuer of realistic size.
func syntheticChain() (chainPEM, keyPEM []byte, leaf *x509.Certificate, err error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := certfleet.GenerateKey(certfleet.ECDSAP256)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), DNSNames: []string{"host.bench.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf, _ = x509.ParseCertificate(der)
	keyPEM, err = certfleet.MarshalPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	chainPEM = append(pemCert(der), pemCert(caDER)...)
	return chainPEM, keyPEM, leaf, nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
