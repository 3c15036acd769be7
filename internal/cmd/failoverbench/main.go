// Command failoverbench measures issue 16's failover in one run, for
// BENCHMARKS.md §13: three `certfleet serve` processes on one PostgreSQL
// database issue N names against an in-process Pebble; a third of the way
// through one of them is killed with SIGKILL; once its work is taken over
// and two thirds are issued, the database is cut away from every instance
// for a few seconds (as a PostgreSQL restart looks to them), and the run
// goes on to the end.
//
//	go run ./internal/cmd/failoverbench -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' -n 600
//
// The database is reached through internal/cutproxy (every connection
// closed, new ones refused for the cut), not by restarting the server,
// which other runs share. Pebble validates http-01 through a load
// balancer in front of the three instances' responders, so a token
// presented by one instance is answered by another (the solver/answers
// copies): by default (-balancer=nginx) a real nginx, an HTTP reverse
// proxy that retries a validation on the next instance when one fails
// mid-request (BENCHMARKS.md §25); with -balancer=tcp a plain L4
// round robin that skips the dead instance for new connections but cannot
// retry one in flight when it dies (the balancer's window, §22). Each run
// uses a new schema, dropped afterwards.
//
// It reports how long after the kill the dead instance's jobs were taken
// over and issued; for the jobs in flight at the cut, how long after the
// database's return they were issued, by which instance, and any failed
// attempt (a lease waited out shows as another instance issuing it, or a
// "lease lost" in the logs); and
// the orders per name (Pebble's new orders and finalizations, the
// issuances per name: exactly one each).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/benchdb"
	"github.com/certfleet/certfleet/internal/cutproxy"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/postgres"
)

func main() {
	dsn := flag.String("dsn", os.Getenv("CERTFLEET_TEST_POSTGRES"), "PostgreSQL server DSN (default $CERTFLEET_TEST_POSTGRES)")
	n := flag.Int("n", 600, "names (enough that the takeover ends before two thirds are issued)")
	concurrency := flag.Int("concurrency", 5, "orders in flight per instance (Pebble wedges above 16 in all)")
	cut := flag.Duration("cut", 5*time.Second, "how long the database is cut away")
	bin := flag.String("certfleet", "", "the certfleet binary (default: built from ./cmd/certfleet)")
	keep := flag.Bool("keep", false, "keep the run's directory (configs, logs)")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound of the run")
	balancer := flag.String("balancer", "nginx", "the http-01 front: nginx (HTTP reverse proxy, retries on the next instance) or tcp (L4 round robin, no retry)")
	nginxBin := flag.String("nginx", "/usr/sbin/nginx", "the nginx binary, for -balancer=nginx")
	flag.Parse()
	if *dsn == "" {
		fmt.Fprintln(os.Stderr, "failoverbench: give -dsn or set CERTFLEET_TEST_POSTGRES")
		os.Exit(2)
	}
	if *balancer != "nginx" && *balancer != "tcp" {
		fmt.Fprintf(os.Stderr, "failoverbench: -balancer=%q: want nginx or tcp\n", *balancer)
		os.Exit(2)
	}
	if *balancer != "nginx" {
		*nginxBin = ""
	}
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	if err := run(*dsn, *bin, *nginxBin, *n, *concurrency, *cut, *keep, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "failoverbench:", err)
		os.Exit(1)
	}
}

// instance is one `certfleet serve` process.
type instance struct {
	name string
	cmd  *exec.Cmd
	log  string // its stderr and stdout
	port int    // its http-01 responder
	dead atomic.Bool
}

// owner is the lease owner prefix of the process (manager.DefaultInstance:
// host-PID-random).
func (in *instance) owns(leaseOwner string) bool {
	return strings.Contains(leaseOwner, fmt.Sprintf("-%d-", in.cmd.Process.Pid))
}

func run(server, bin, nginxBin string, n, concurrency int, cut time.Duration, keep bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "failoverbench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("run directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if bin == "" {
		bin = filepath.Join(dir, "certfleet")
		build := exec.Command("go", "build", "-o", bin, "./cmd/certfleet")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build certfleet (run from the module's root, or give -certfleet): %w", err)
		}
	}
	dsn, drop, err := benchdb.NewSchema(ctx, server, "failoverbench")
	if err != nil {
		return err
	}
	defer drop()
	u, _ := url.Parse(dsn)
	db, err := cutproxy.New(u.Host)
	if err != nil {
		return err
	}
	defer db.Close()
	u.Host = db.Addr()
	instanceDSN := u.String()

	// The balancer Pebble validates through, then Pebble.
	lb, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer lb.Close()
	lbPort := lb.Addr().(*net.TCPAddr).Port
	if nginxBin != "" {
		lb.Close() // nginx listens there
	}
	ca, err := pebbleca.Start(ctx, pebbleca.Config{HTTPPort: lb.Addr().(*net.TCPAddr).Port})
	if err != nil {
		return err
	}
	defer ca.Close()
	roots := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(roots, ca.TLSRootPEM(), 0o644); err != nil {
		return err
	}
	var certs strings.Builder
	for i := range n {
		fmt.Fprintf(&certs, "[[certificate]]\nname = \"f%04d\"\nidentifiers = [\"f%04d.certfleet.test\"]\n", i, i)
	}
	var instances []*instance
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		idir := filepath.Join(dir, fmt.Sprintf("instance-%d", i+1))
		if err := os.MkdirAll(idir, 0o700); err != nil {
			return err
		}
		cfg := fmt.Sprintf(`state = %q
[log]
level = "debug"
[ca]
directory = %q
trusted_roots = %q
[http01]
listen = "127.0.0.1:%d"
[tlsalpn01]
listen = ""
[renewal]
concurrency = %d
[self_test]
resolvers = [%q]
http_port = %d
%s`, instanceDSN, ca.DirectoryURL(), roots, port, concurrency, ca.ResolverAddr(), lb.Addr().(*net.TCPAddr).Port, certs.String())
		path := filepath.Join(idir, "certfleet.toml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return err
		}
		in := &instance{name: fmt.Sprintf("instance-%d", i+1), port: port, log: filepath.Join(idir, "log")}
		instances = append(instances, in)
	}
	var front *frontNginx
	if nginxBin != "" {
		ports := make([]int, len(instances))
		for i, in := range instances {
			ports[i] = in.port
		}
		front, err = startNginx(nginxBin, dir, lbPort, ports)
		if err != nil {
			return err
		}
		defer front.stop()
		fmt.Printf("http-01 front: nginx (%s), upstream of the 3 responders, proxy_next_upstream error timeout; logs in %s\n", nginxBin, front.prefix)
	} else {
		go balance(lb, instances)
		fmt.Println("http-01 front: L4 TCP round robin (no retry of a request in flight)")
	}

	// The test's own view of the database: direct, not through the cut.
	store, err := postgres.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	// The first instance creates the schema; the others start once it
	// has (they would wait for its advisory lock anyway).
	start := time.Now()
	for i, in := range instances {
		logf, err := os.Create(in.log)
		if err != nil {
			return err
		}
		defer logf.Close()
		in.cmd = exec.Command(bin, "serve", "-config", filepath.Join(dir, in.name, "certfleet.toml"))
		in.cmd.Stdout, in.cmd.Stderr = logf, logf
		if err := in.cmd.Start(); err != nil {
			return err
		}
		defer func() {
			if !in.dead.Load() {
				in.cmd.Process.Signal(syscall.SIGTERM)
				in.cmd.Wait()
			}
		}()
		if i == 0 {
			for {
				if _, err := store.Jobs(ctx, certfleet.JobFilter{}); err == nil {
					break
				}
				if time.Since(start) > time.Minute {
					return fmt.Errorf("the first instance did not create the schema in a minute; see %s", in.log)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	fmt.Printf("%d names, 3 instances (`certfleet serve`, concurrency %d each, default takeover), PostgreSQL through a cut proxy, Pebble in-process\n", n, concurrency)

	jobs := func() []certfleet.Job {
		for {
			js, err := store.Jobs(ctx, certfleet.JobFilter{})
			if err == nil {
				return js
			}
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	issued := func(js []certfleet.Job) int {
		k := 0
		for _, j := range js {
			if j.CurrentID != 0 {
				k++
			}
		}
		return k
	}
	waitIssued := func(k int) ([]certfleet.Job, error) {
		for {
			js := jobs()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%d of %d issued when the run timed out", issued(js), n)
			}
			if len(js) == n && issued(js) >= k {
				return js, nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// 1. SIGKILL one instance a third of the way, with its jobs in flight.
	js, err := waitIssued(n / 3)
	if err != nil {
		return err
	}
	victim := instances[1]
	var victimJobs []certfleet.JobKey
	for {
		victimJobs = victimJobs[:0]
		for _, j := range js {
			if j.LeaseOwner != "" && victim.owns(j.LeaseOwner) && j.CurrentID == 0 {
				victimJobs = append(victimJobs, j.JobKey)
			}
		}
		if len(victimJobs) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
		js = jobs()
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	killed := time.Now()
	victim.dead.Store(true)
	victim.cmd.Wait()
	fmt.Printf("\nSIGKILL of %s (pid %d) at %d/%d issued, %.1f s into the run, holding %d jobs not yet issued\n",
		victim.name, victim.cmd.Process.Pid, issued(js), n, killed.Sub(start).Seconds(), len(victimJobs))
	resumed := make(map[certfleet.JobKey]time.Duration)
	done := make(map[certfleet.JobKey]time.Duration)
	for len(done) < len(victimJobs) {
		if ctx.Err() != nil {
			return fmt.Errorf("the killed instance's jobs: %d of %d issued when the run timed out", len(done), len(victimJobs))
		}
		for _, key := range victimJobs {
			j, err := store.Job(ctx, key)
			if err != nil {
				continue
			}
			since := time.Since(killed)
			if _, ok := resumed[key]; !ok && ((j.LeaseOwner != "" && !victim.owns(j.LeaseOwner)) || j.CurrentID != 0) {
				resumed[key] = since
			}
			if _, ok := done[key]; !ok && j.CurrentID != 0 {
				done[key] = since
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, key := range victimJobs {
		by, err := issuedBy(ctx, store, key)
		if err != nil {
			return err
		}
		if victim.owns(by) {
			fmt.Printf("  %s: issued by %s itself %.2f s after the kill (its result saved as it died)\n", key.Spec, victim.name, done[key].Seconds())
			continue
		}
		fmt.Printf("  %s: taken over %.2f s after the kill, issued %.2f s after it\n", key.Spec, resumed[key].Seconds(), done[key].Seconds())
	}

	var worstTaken, worstDone time.Duration
	for _, key := range victimJobs {
		worstTaken, worstDone = max(worstTaken, resumed[key]), max(worstDone, done[key])
	}
	fmt.Printf("  the killed instance's %d jobs: taken over at most %.2f s, issued at most %.2f s after the kill\n", len(victimJobs), worstTaken.Seconds(), worstDone.Seconds())

	// 2. Cut the database away from every instance two thirds of the way
	// (or now, if the takeover took longer), with jobs in flight.
	js, err = waitIssued(2 * n / 3)
	if err != nil {
		return err
	}
	atCut := make(map[certfleet.JobKey]string) // in flight: its owner
	for len(atCut) == 0 {
		for _, j := range js {
			if j.LeaseOwner != "" && j.CurrentID == 0 {
				atCut[j.JobKey] = j.LeaseOwner
			}
		}
		if issued(js) == n {
			return fmt.Errorf("all %d were issued before the cut: run with a larger -n", n)
		}
		if len(atCut) == 0 {
			time.Sleep(10 * time.Millisecond)
			js = jobs()
		}
	}
	db.Cut()
	cutAt := time.Now()
	fmt.Printf("\ndatabase cut for %v at %d/%d issued, %.1f s into the run, %d jobs in flight\n", cut, issued(js), n, cutAt.Sub(start).Seconds(), len(atCut))
	time.Sleep(cut)
	if err := db.Restore(); err != nil {
		return err
	}
	back := time.Now()
	cutDone := make(map[certfleet.JobKey]time.Duration)
	takenOver, failedJobs := 0, 0
	for len(cutDone) < len(atCut) {
		if ctx.Err() != nil {
			return fmt.Errorf("the jobs in flight at the cut: %d of %d issued when the run timed out", len(cutDone), len(atCut))
		}
		for key := range atCut {
			if _, ok := cutDone[key]; ok {
				continue
			}
			j, err := store.Job(ctx, key)
			if err == nil && j.CurrentID != 0 {
				cutDone[key] = time.Since(back)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var worst time.Duration
	keys := make([]certfleet.JobKey, 0, len(atCut))
	for key := range atCut {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a].Spec < keys[b].Spec })
	for _, key := range keys {
		owner := atCut[key]
		worst = max(worst, cutDone[key])
		by, err := issuedBy(ctx, store, key)
		if err != nil {
			return err
		}
		note := "by the instance that held it"
		if by != owner {
			takenOver++
			note = "by another instance"
		}
		failed, err := failures(ctx, store, key)
		if err != nil {
			return err
		}
		if failed != "" {
			failedJobs++
			note += "; failed attempt: " + failed
		}
		fmt.Printf("  %s: issued %.2f s after the database's return, %s\n", key.Spec, cutDone[key].Seconds(), note)
	}
	fmt.Printf("  the %d jobs in flight at the cut were issued at most %.2f s after the database's return; %d by another instance than the one holding it, %d with a failed attempt\n",
		len(atCut), worst.Seconds(), takenOver, failedJobs)

	// 3. The rest, then the counts.
	if _, err := waitIssued(n); err != nil {
		return err
	}
	total := time.Since(start)
	all, err := store.Issuances(ctx, certfleet.IssuanceFilter{Limit: 10 * n})
	if err != nil {
		return err
	}
	per := make(map[string]int)
	orders := make(map[string]bool)
	for _, i := range all {
		per[i.Spec]++
		orders[i.OrderURL] = true
	}
	var twice []string
	for name, k := range per {
		if k != 1 {
			twice = append(twice, fmt.Sprintf("%s×%d", name, k))
		}
	}
	sort.Strings(twice)
	byInstance := make(map[string]int)
	var failedAll []string // every failed attempt of the run: what an extra order came from
	for _, j := range jobs() {
		as, err := store.Attempts(ctx, j.JobKey, 0)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.Outcome == certfleet.OutcomeFailed {
				e := a.Error
				if len(e) > 200 {
					e = e[:200] + "…"
				}
				failedAll = append(failedAll, fmt.Sprintf("%s: %s", j.Spec, e))
			}
			if a.Outcome == certfleet.OutcomeIssued {
				for _, in := range instances {
					if in.owns(a.Instance) {
						byInstance[in.name]++
					}
				}
			}
		}
	}
	lost, unavailable := 0, 0
	sources := make(map[string]int) // where the http-01 answers came from
	placed := make(map[string]int)  // orders placed per certificate
	// Orders of an interrupted placing (killed between newOrder and
	// saving the URL) looked up at the CA by the taker: found, not found.
	var found, notFound []string
	for _, in := range instances {
		if err := eachLine(in.log, func(line string) {
			switch {
			case strings.Contains(line, `msg="found the order of an interrupted placing`):
				found = append(found, field(line, "certificate"))
			case strings.Contains(line, `msg="no order of an interrupted placing found`):
				notFound = append(notFound, field(line, "certificate"))
			case strings.Contains(line, `msg="http-01 validation request answered"`):
				sources[field(line, "source")]++
			case strings.Contains(line, `msg="order placed"`):
				placed[field(line, "certificate")]++
			}
		}); err != nil {
			return err
		}
		k, err := countLines(in.log, "lease lost")
		if err != nil {
			return err
		}
		lost += k
		// The responder's 503s (solver/http01: a token neither in
		// memory nor readable from the store).
		k, err = countLines(in.log, "http-01 token lookup")
		if err != nil {
			return err
		}
		unavailable += k
	}
	fmt.Printf("\nall %d issued in %.1f s; issued by %v\n", n, total.Seconds(), byInstance)
	fmt.Printf("issuances %d for %d names (names issued more than once: %d %v); distinct orders %d\n", len(all), len(per), len(twice), twice, len(orders))
	fmt.Printf("Pebble: %d new orders, %d finalized (want %d each: one order per name)\n", ca.NewOrders(), ca.Finalizations(), n)
	fmt.Printf("log lines \"lease lost\" in the instances' logs: %d; http-01 answered 503 (store unreachable, token not in memory): %d\n", lost, unavailable)
	if front != nil {
		if err := front.alive(); err != nil {
			return err
		}
		nc, err := front.counts()
		if err != nil {
			return err
		}
		fmt.Printf("nginx: %d requests (the CA's validations and the self-test probes), %d retried on another instance (more than one upstream tried): %d the CA's validations, %d self-test probes; %d answered 502/504 by nginx itself (every instance tried failed)\n",
			nc.requests, nc.retried, nc.retried-nc.probes, nc.probes, nc.failed)
		fmt.Printf("nginx's failed attempts (error log): %d reset or closed before the response header (in flight to an instance as it died), %d connections refused\n", nc.inFlight, nc.refused)
		for _, l := range nc.examples {
			fmt.Println("  " + l)
		}
	} else {
		fmt.Printf("balancer connections open to the killed instance when it died (a validation in flight sees EOF): %d\n", diedDuring.Load())
	}
	fmt.Printf("http-01 answers by source (local: presented there; copy: another instance's, from memory; store: read): %v\n", sources)
	var again []string
	for name, k := range placed {
		if k > 1 {
			again = append(again, fmt.Sprintf("%s×%d", name, k))
		}
	}
	sort.Strings(again)
	fmt.Printf("certificates with more than one order placed (the instances' logs): %v\n", again)
	fmt.Printf("orders of an interrupted placing looked up at the CA by the taker: found %v, not found %v\n", found, notFound)
	fmt.Printf("failed attempts in the run: %d\n", len(failedAll))
	for _, f := range failedAll {
		fmt.Println("  " + f)
	}
	if len(twice) > 0 || ca.NewOrders() != int64(n) || ca.Finalizations() != int64(n) || len(per) != n {
		return errors.New("not exactly one order and one certificate per name")
	}
	return nil
}

// diedDuring counts the connections balance had open to an instance when
// it was killed (a validation in flight among them saw EOF; an idle
// keep-alive one harmed nothing).
var diedDuring atomic.Int64

// balance forwards each connection to the next instance's responder that
// accepts it, round robin, as a load balancer in front of the instances.
func balance(ln net.Listener, instances []*instance) {
	var next atomic.Uint64
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			first := next.Add(1)
			for k := range uint64(len(instances)) {
				in := instances[(first+k)%uint64(len(instances))]
				if in.dead.Load() {
					continue
				}
				b, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", in.port), time.Second)
				if err != nil {
					continue
				}
				defer b.Close()
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); io.Copy(b, c); b.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, b)
				if in.dead.Load() {
					diedDuring.Add(1) // the balancer's window
				}
				c.(*net.TCPConn).CloseWrite()
				wg.Wait()
				return
			}
		}()
	}
}

// issuedBy returns the instance whose attempt issued key's certificate.
func issuedBy(ctx context.Context, store *postgres.Store, key certfleet.JobKey) (string, error) {
	as, err := store.Attempts(ctx, key, 0)
	if err != nil {
		return "", err
	}
	for _, a := range as {
		if a.Outcome == certfleet.OutcomeIssued {
			return a.Instance, nil
		}
	}
	return "", fmt.Errorf("%s: no issued attempt", key)
}

// failures returns the errors of key's failed attempts, "" for none.
func failures(ctx context.Context, store *postgres.Store, key certfleet.JobKey) (string, error) {
	as, err := store.Attempts(ctx, key, 0)
	if err != nil {
		return "", err
	}
	var out []string
	for _, a := range as {
		if a.Outcome == certfleet.OutcomeFailed {
			e := a.Error
			if len(e) > 160 {
				e = e[:160] + "…"
			}
			out = append(out, e)
		}
	}
	return strings.Join(out, "; "), nil
}

// eachLine calls fn with every line of the file at path.
func eachLine(path string, fn func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}

// field returns the value of key=value in a log line (text handler).
func field(line, key string) string {
	_, v, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return strings.Trim(v, `"`)
}

func countLines(path, substr string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	k := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			k++
		}
	}
	return k, sc.Err()
}
