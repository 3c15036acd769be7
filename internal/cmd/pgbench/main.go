// Command pgbench measures certfleet on PostgreSQL for BENCHMARKS.md: N
// single-name certificates issued by one instance, then by three instances
// sharing the database, against an in-process Pebble with real http-01
// validation over loopback. It reports wall time and the CPU time the
// PostgreSQL server itself spent (user+system of every postgres process, from
// /proc/PID/stat, so it must run on the database's host), next to this
// process's own CPU time (certfleet and Pebble together).
//
//	go run ./internal/cmd/pgbench -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' -n 1000
//
// Each run uses a new schema, dropped afterwards. Orders in flight are kept
// to 15 in total (Pebble wedges above 16): 15 for one instance, 5 each for
// three. Every run checks that each name was issued exactly once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/benchdb"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/solver/http01"
)

func main() {
	dsn := flag.String("dsn", os.Getenv("CERTFLEET_TEST_POSTGRES"), "PostgreSQL server DSN (a postgres:// URL; default $CERTFLEET_TEST_POSTGRES)")
	n := flag.Int("n", 1000, "certificates per run")
	inFlight := flag.Int("inflight", 15, "orders in flight in total, split between instances (Pebble wedges above 16)")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound of each run")
	flag.Parse()
	if *dsn == "" {
		fmt.Fprintln(os.Stderr, "pgbench: give -dsn or set CERTFLEET_TEST_POSTGRES")
		os.Exit(2)
	}
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	fmt.Printf("%d single-name ECDSA P-256 certificates, http-01, %d orders in flight in total\n\n", *n, *inFlight)
	fmt.Printf("%-10s %9s %8s %13s %12s %12s\n", "instances", "wall", "certs/s", "postgres CPU", "per cert", "certfleet+Pebble CPU")
	for _, instances := range []int{1, 3} {
		r, err := run(*dsn, *n, instances, *inFlight/instances, *timeout)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgbench: %d instances: %v\n", instances, err)
			os.Exit(1)
		}
		fmt.Printf("%-10d %9s %8.1f %13s %10.2fms %12s\n", instances, r.wall.Round(time.Millisecond),
			float64(*n)/r.wall.Seconds(), r.pgCPU.Round(time.Millisecond),
			float64(r.pgCPU.Microseconds())/1000/float64(*n), r.selfCPU.Round(time.Millisecond))
	}
}

type result struct {
	wall, pgCPU, selfCPU time.Duration
}

func run(server string, n, instances, concurrency int, timeout time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dsn, drop, err := benchdb.NewSchema(ctx, server, "pgbench")
	if err != nil {
		return result{}, err
	}
	defer drop()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	ca, err := pebbleca.Start(ctx, pebbleca.Config{Concurrent: true, HTTPPort: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		return result{}, err
	}
	defer ca.Close()
	var stores []*postgres.Store
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	open := func() (*postgres.Store, error) {
		s, err := postgres.Open(ctx, dsn)
		if err == nil {
			stores = append(stores, s)
		}
		return s, err
	}
	db, err := open()
	if err != nil {
		return result{}, err
	}
	rctx, stopResponder := context.WithCancel(ctx)
	defer stopResponder()
	go (&http01.Responder{Store: db}).Serve(rctx, ln)

	specs := make([]certfleet.CertificateSpec, n)
	for i := range specs {
		name := fmt.Sprintf("bench-%05d", i)
		specs[i] = certfleet.CertificateSpec{
			Name:        name,
			Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: name + ".certfleet.test"}},
			KeyTypes:    []certfleet.KeyType{certfleet.ECDSAP256},
			Challenge:   certfleet.ChallengeHTTP01,
			Source:      certfleet.SourceConfig,
		}
	}
	var managers []*manager.Manager
	for i := range instances {
		s, err := open()
		if err != nil {
			return result{}, err
		}
		iss, err := acmeissuer.New(acmeissuer.Config{
			DirectoryURL:    ca.DirectoryURL(),
			TrustedRootsPEM: ca.TLSRootPEM(),
			Accounts:        s,
			Solvers:         map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: &http01.Solver{Store: s, Tokens: &http01.Tokens{}}},
			PollInterval:    50 * time.Millisecond,
		})
		if err != nil {
			return result{}, err
		}
		managers = append(managers, &manager.Manager{
			Store: s, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
			Instance: fmt.Sprintf("bench-%d", i+1), Concurrency: concurrency,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}

	pg0, err := postgresCPU()
	if err != nil {
		return result{}, err
	}
	self0 := selfCPU()
	start := time.Now()
	if _, err := db.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		return result{}, err
	}
	mctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, m := range managers {
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(mctx) }()
	}
	for {
		iss, err := db.Issuances(ctx, certfleet.IssuanceFilter{Limit: n + 1})
		if err != nil {
			stop()
			wg.Wait()
			return result{}, err
		}
		if len(iss) >= n {
			break
		}
		select {
		case <-ctx.Done():
			stop()
			wg.Wait()
			return result{}, fmt.Errorf("%d of %d issued before the timeout", len(iss), n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	wall := time.Since(start)
	stop()
	wg.Wait()
	pg1, err := postgresCPU()
	if err != nil {
		return result{}, err
	}
	r := result{wall: wall, pgCPU: pg1 - pg0, selfCPU: selfCPU() - self0}

	if got := ca.Finalizations(); got != int64(n) {
		return r, fmt.Errorf("Pebble finalized %d orders for %d names", got, n)
	}
	iss, err := db.Issuances(ctx, certfleet.IssuanceFilter{})
	if err != nil {
		return r, err
	}
	if len(iss) != n {
		return r, fmt.Errorf("%d issuances for %d names", len(iss), n)
	}
	return r, nil
}

// postgresCPU sums user+system CPU time of every process named postgres
// (the postmaster, its backends and background workers). A backend that
// exits during a run takes its time with it; runs keep their connections
// open, so that loses little.
func postgresCPU() (time.Duration, error) {
	const ticks = 100 // USER_HZ on Linux
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	var total int64
	found := false
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open || s[open+1:close] != "postgres" {
			continue
		}
		f := strings.Fields(s[close+1:])
		// After the command: state(0) ... utime is field 14 of stat, 12 here.
		if len(f) < 13 {
			continue
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		total += ut + st
		found = true
	}
	if !found {
		return 0, errors.New("no postgres process found in /proc: run pgbench on the database's host")
	}
	return time.Duration(total) * time.Second / ticks, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
