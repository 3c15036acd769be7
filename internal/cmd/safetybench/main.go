// Command safetybench measures issue 16's safety margins for BENCHMARKS.md
// §12, with the scheduler (manager.Run, as serve runs it) in real time
// against an in-process Pebble over real http-01 on loopback:
//
//	go run ./internal/cmd/safetybench -mode renewals -lifetime 1m -duration 10m -certs 10
//	go run ./internal/cmd/safetybench -mode outage -certs 300 -outage 60s
//
// renewals: certificates of the given lifetime are renewed again and again
// for the duration; Pebble's ARI window for them is clamped to [issued,
// expiry]. It lists the positions of every renewal in the lifetime of the
// certificate it replaced (a time minus NotBefore of the old certificate,
// over the old lifetime): scheduled (the job's NextAt when the scheduler
// claimed it for the renewal), started (the claim) and completed (the new
// certificate's issuance time).
//
// outage: the certificates are issued through a TCP proxy in front of
// the CA (internal/cutproxy); once a third are issued the proxy is cut for
// the outage and restored. It reports the log lines (info and above)
// during the outage, and how long after the CA's return all were issued,
// next to the reference measured in the same run: how long the same
// number of certificates took before the outage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/cutproxy"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/sqlite"
)

func main() {
	mode := flag.String("mode", "renewals", "renewals or outage")
	lifetime := flag.Duration("lifetime", time.Minute, "certificate lifetime (renewals)")
	duration := flag.Duration("duration", 10*time.Minute, "how long to run (renewals)")
	certs := flag.Int("certs", 10, "certificates")
	outage := flag.Duration("outage", 60*time.Second, "how long the CA is cut (outage)")
	concurrency := flag.Int("concurrency", 16, "orders in flight (Pebble wedges above 16)")
	logFile := flag.String("log", "", "write the scheduler's log (debug) to this file")
	flag.Parse()
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	if err := run(*mode, *lifetime, *duration, *certs, *outage, *concurrency, *logFile); err != nil {
		fmt.Fprintln(os.Stderr, "safetybench:", err)
		os.Exit(1)
	}
}

// lines keeps the time of every record of info level and above, and
// passes every record on to out.
type lines struct {
	mu  sync.Mutex
	at  []time.Time
	msg []string
	out slog.Handler
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		l.mu.Lock()
		l.at = append(l.at, r.Time)
		l.msg = append(l.msg, r.Level.String()+" "+r.Message)
		l.mu.Unlock()
	}
	return l.out.Handle(ctx, r)
}
func (l *lines) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrLines{l: l, h: l.out.WithAttrs(as)}
}
func (l *lines) WithGroup(string) slog.Handler { return l }

type attrLines struct {
	l *lines
	h slog.Handler
}

func (a *attrLines) Enabled(context.Context, slog.Level) bool { return true }
func (a *attrLines) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		a.l.mu.Lock()
		a.l.at = append(a.l.at, r.Time)
		a.l.msg = append(a.l.msg, r.Level.String()+" "+r.Message)
		a.l.mu.Unlock()
	}
	return a.h.Handle(ctx, r)
}
func (a *attrLines) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrLines{l: a.l, h: a.h.WithAttrs(as)}
}
func (a *attrLines) WithGroup(string) slog.Handler { return a }

func (l *lines) between(from, to time.Time) (n int, kinds map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kinds = make(map[string]int)
	for i, t := range l.at {
		if !t.Before(from) && t.Before(to) {
			n++
			kinds[l.msg[i]]++
		}
	}
	return n, kinds
}

func run(mode string, lifetime, duration time.Duration, n int, outage time.Duration, concurrency int, logFile string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "safetybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	profile := pebbleca.Profile{ValidityPeriod: lifetime}
	if mode == "outage" {
		profile = pebbleca.Profile{} // Pebble's default: nothing renews during the run
	}
	ca, err := pebbleca.Start(ctx, pebbleca.Config{HTTPPort: httpLn.Addr().(*net.TCPAddr).Port,
		Profiles: map[string]pebbleca.Profile{pebbleca.DefaultProfile: profile}})
	if err != nil {
		return err
	}
	defer ca.Close()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	tokens := &http01.Tokens{}
	go (&http01.Responder{Store: store, Tokens: tokens}).Serve(ctx, httpLn)

	directory := ca.DirectoryURL()
	var proxy *cutproxy.Proxy
	if mode == "outage" {
		u, _ := url.Parse(directory)
		if proxy, err = cutproxy.New(u.Host); err != nil {
			return err
		}
		defer proxy.Close()
		u.Host = proxy.Addr()
		directory = u.String()
	}
	var out io.Writer = io.Discard
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	logs := &lines{out: slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})}
	log := slog.New(logs)
	iss, err := acmeissuer.New(acmeissuer.Config{DirectoryURL: directory, TrustedRootsPEM: ca.TLSRootPEM(), Accounts: store,
		Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: &http01.Solver{Store: store, Tokens: tokens}},
		PollInterval: 50 * time.Millisecond, Logger: log})
	if err != nil {
		return err
	}
	var specs []certfleet.CertificateSpec
	for i := range n {
		ids, _ := certfleet.ParseIdentifiers([]string{fmt.Sprintf("s%04d.certfleet.test", i)})
		specs = append(specs, certfleet.CertificateSpec{Name: fmt.Sprintf("s%04d", i), Identifiers: ids,
			KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceConfig})
	}
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		return err
	}
	claims := &claimLog{Store: store}
	m := &manager.Manager{Store: claims, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		Concurrency: concurrency, Logger: log}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	defer func() { stop(); <-done }()

	issued := func() int {
		cur, err := store.Jobs(ctx, certfleet.JobFilter{})
		if err != nil {
			return -1
		}
		k := 0
		for _, j := range cur {
			if j.CurrentID != 0 {
				k++
			}
		}
		return k
	}
	switch mode {
	case "renewals":
		fmt.Printf("renewals: %d certificates of %v, for %v, concurrency %d\n", n, lifetime, duration, concurrency)
		time.Sleep(duration)
		stop()
		<-done
		done <- nil
		return renewals(ctx, store, specs, claims)
	case "outage":
		start := time.Now()
		third := n / 3
		for issued() < third {
			if time.Since(start) > 10*time.Minute {
				return fmt.Errorf("only %d issued in 10 minutes", issued())
			}
			time.Sleep(20 * time.Millisecond)
		}
		ref := time.Since(start)
		before := issued()
		proxy.Cut()
		cutAt := time.Now()
		fmt.Printf("outage: %d certificates, concurrency %d; %d issued in %v before the cut (reference: %.1f per second)\n",
			n, concurrency, before, ref.Round(10*time.Millisecond), float64(before)/ref.Seconds())
		time.Sleep(outage)
		during, kinds := logs.between(cutAt, time.Now())
		if err := proxy.Restore(); err != nil {
			return err
		}
		back := time.Now()
		atCut := issued()
		for issued() < n {
			if time.Since(back) > 10*time.Minute {
				return fmt.Errorf("only %d of %d issued 10 minutes after the CA's return", issued(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(back)
		left := n - atCut
		refLeft := time.Duration(float64(ref) * float64(left) / float64(before))
		fmt.Printf("log lines (info and above) during the %v outage: %d\n", outage, during)
		keys := make([]string, 0, len(kinds))
		for k := range kinds {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("  %4d  %s\n", kinds[k], k)
		}
		after, kinds := logs.between(back, time.Now())
		_ = after
		for k, v := range kinds {
			if strings.Contains(k, "answers again") {
				fmt.Printf("at the CA's return: %d x %s\n", v, k)
			}
		}
		fmt.Printf("all %d issued %v after the CA's return (%d were left); the same number took %v before the outage (ratio %.2f)\n",
			n, took.Round(10*time.Millisecond), left, refLeft.Round(10*time.Millisecond), took.Seconds()/refLeft.Seconds())
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// claimLog records every job the scheduler claims: when, and the NextAt
// it was claimed at.
type claimLog struct {
	*sqlite.Store
	mu  sync.Mutex
	all map[string][]claim // spec → its claims in order
}

type claim struct {
	currentID int64
	nextAt    time.Time
	at        time.Time
}

func (c *claimLog) ClaimDue(ctx context.Context, r certfleet.ClaimRequest) ([]certfleet.Job, error) {
	jobs, err := c.Store.ClaimDue(ctx, r)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.all == nil {
		c.all = make(map[string][]claim)
	}
	for _, j := range jobs {
		c.all[j.Spec] = append(c.all[j.Spec], claim{currentID: j.CurrentID, nextAt: j.NextAt, at: now})
	}
	return jobs, err
}

// renewalClaim returns the last claim of spec while old was its current
// certificate: the one that renewed it.
func (c *claimLog) renewalClaim(spec string, old int64) (claim, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := c.all[spec]
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].currentID == old {
			return all[i], true
		}
	}
	return claim{}, false
}

// renewals prints the positions of every renewal in the replaced
// certificate's lifetime: scheduled, started, completed.
func renewals(ctx context.Context, store *sqlite.Store, specs []certfleet.CertificateSpec, claims *claimLog) error {
	type renewal struct{ scheduled, started, completed float64 }
	var rs []renewal
	for _, sp := range specs {
		all, err := store.Issuances(ctx, certfleet.IssuanceFilter{Spec: sp.Name})
		if err != nil {
			return err
		}
		byID := make(map[int64]certfleet.Issuance, len(all))
		for _, i := range all {
			byID[i.ID] = i
		}
		for _, i := range all {
			old, ok := byID[i.Replaces]
			if i.Replaces == 0 || !ok {
				continue
			}
			life := float64(old.NotAfter.Sub(old.NotBefore))
			pos := func(t time.Time) float64 { return float64(t.Sub(old.NotBefore)) / life }
			r := renewal{scheduled: -1, started: -1, completed: pos(i.IssuedAt)}
			if c, ok := claims.renewalClaim(sp.Name, old.ID); ok {
				r.scheduled, r.started = pos(c.nextAt), pos(c.at)
			}
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return fmt.Errorf("no renewals")
	}
	sort.Slice(rs, func(a, b int) bool { return rs[a].completed < rs[b].completed })
	list := func(get func(renewal) float64) (string, []float64) {
		var v []float64
		for _, r := range rs {
			v = append(v, get(r))
		}
		sort.Float64s(v)
		var b strings.Builder
		for i, p := range v {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%.3f", p)
		}
		return b.String(), v
	}
	late := 0
	for _, r := range rs {
		if r.completed >= 0.8 {
			late++
		}
	}
	for _, k := range []struct {
		name string
		get  func(renewal) float64
	}{
		{"scheduled", func(r renewal) float64 { return r.scheduled }},
		{"started", func(r renewal) float64 { return r.started }},
		{"completed", func(r renewal) float64 { return r.completed }},
	} {
		txt, v := list(k.get)
		fmt.Printf("%s: min %.4f, median %.4f, max %.4f\n", k.name, v[0], v[len(v)/2], v[len(v)-1])
		fmt.Printf("  sorted: %s\n", txt)
	}
	fmt.Printf("%d renewals; completed at or after 0.80: %d\n", len(rs), late)
	fmt.Printf("per renewal (scheduled started completed), in order of completion:\n")
	for i, r := range rs {
		fmt.Printf("  %.4f %.4f %.4f", r.scheduled, r.started, r.completed)
		if i%4 == 3 {
			fmt.Println()
		}
	}
	fmt.Println()
	return nil
}
