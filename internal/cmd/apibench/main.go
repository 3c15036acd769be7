// Command apibench measures GET /v1/names/{hostname}/fullchain of the HTTP
// API on loopback with wrk, next to nginx serving the same file from disk
// in the same run, and prints requests per second, p99 latency and the
// ratio. It needs wrk and nginx on PATH (apt-get install wrk nginx-light).
//
//	go run ./internal/cmd/apibench -d 10s -c 64
//
// With -scale N it measures instead how the API holds up as names
// accumulate (issue 13, BENCHMARKS §10): see scale.go. With -listings N it
// fills a store with N certificates and measures every page and filter of
// GET /v1/certificates and the dashboard's list: see listbench.go. With
// -serve N it runs the real `certfleet serve` binary on a store of N
// issued names, with its scheduler ordering the names 8 PUT clients
// declare from an in-process Pebble, and measures PUTs, GET fullchain next
// to nginx and serve's RSS: see serve.go. Run it from the repository's
// root (it builds ./cmd/certfleet).
//
// The API serves a real SQLite store (in a temporary directory) through the
// real httpapi.Server with a bearer token, as in production; nginx serves
// the identical bytes with access logging off.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/sqlite"
)

func main() {
	dur := flag.Duration("d", 10*time.Second, "duration of each wrk run")
	conns := flag.Int("c", 64, "connections")
	threads := flag.Int("t", 2, "wrk threads")
	scaleN := flag.Int("scale", 0, "declare this many names with 8 PUT clients and measure as they accumulate (scale.go)")
	dsn := flag.String("postgres", "", "with -scale, -listings or -serve: a PostgreSQL DSN instead of a SQLite file")
	listN := flag.Int("listings", 0, "fill the store with this many certificates and measure every page and filter of the listings (listbench.go)")
	serveN := flag.Int("serve", 0, "run certfleet serve on a store of this many issued names and measure it (serve.go)")
	declare := flag.Int("declare", 10000, "with -serve: names the 8 PUT clients declare (and serve issues)")
	issueWait := flag.Duration("issue-wait", time.Minute, "with -serve: how long to let issuance go on after the PUTs")
	analyze := flag.Bool("analyze", true, "with -listings and -postgres: ANALYZE after the fill, as autoanalyze would shortly")
	cpuProfile := flag.String("cpuprofile", "", "write this process's CPU profile to this file")
	serveBin := flag.String("serve-bin", "", "with -serve: run this certfleet binary instead of building ./cmd/certfleet")
	serveProf := flag.String("serve-pprof", "", "with -serve: profile serve (CERTFLEET_PPROF): CPU during the PUTs and heap at their end, into this directory")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "apibench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *listN > 0 {
		if err := listingBench(*listN, *dsn, *analyze); err != nil {
			fmt.Fprintln(os.Stderr, "apibench:", err)
			os.Exit(1)
		}
		return
	}
	run := func(dur time.Duration, conns, threads int) error { return run(dur, conns, threads) }
	if *scaleN > 0 {
		run = func(time.Duration, int, int) error { return scale(*scaleN, *dsn) }
	}
	if *serveN > 0 {
		run = func(dur time.Duration, _, _ int) error {
			return serveBench(*serveN, *declare, *dsn, dur, *issueWait, *serveBin, *serveProf)
		}
	}
	if err := run(*dur, *conns, *threads); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
}

func run(dur time.Duration, conns, threads int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "apibench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "certfleet.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	const name = "bench.example.org"
	chain, keyPEM, err := testChain(name)
	if err != nil {
		return err
	}
	sp := certfleet.CertificateSpec{Name: name, Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: name}},
		KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceAPI}
	if _, err := store.PutSpec(ctx, sp); err != nil {
		return err
	}
	if _, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 1}); err != nil {
		return err
	}
	certs, _ := certfleet.ParseChain(chain)
	iss := certfleet.Issuance{Spec: name, KeyType: certfleet.ECDSAP256, SpecRevision: sp.Revision(certfleet.ECDSAP256), Identifiers: sp.Identifiers,
		Serial: certs[0].SerialNumber.Text(16), Fingerprint: certfleet.Fingerprint(certs[0]), NotBefore: certs[0].NotBefore, NotAfter: certs[0].NotAfter,
		ChainPEM: chain, KeyPEM: keyPEM, IssuedAt: time.Now()}
	if _, err := store.CompleteIssuance(ctx, "bench", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)},
		certfleet.Attempt{JobKey: certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256}, Instance: "bench", Outcome: certfleet.OutcomeIssued}); err != nil {
		return err
	}
	id, secret, hash := certfleet.NewTokenSecret()
	if err := store.CreateToken(ctx, certfleet.Token{ID: id, Names: []string{"*"}, Permissions: []certfleet.Permission{certfleet.PermReadCerts}, Hash: hash}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &httpapi.Server{Store: store}
	go httpapi.Serve(ctx, ln, srv.Handler())

	// nginx serving the same bytes from disk.
	nginxURL, stopNginx, err := startNginxWorkers(ctx, dir, chain, 2)
	if err != nil {
		return err
	}
	defer stopNginx()

	apiURL := fmt.Sprintf("http://%s/v1/names/%s/fullchain", ln.Addr(), name)
	fmt.Printf("fullchain: %d bytes; wrk -t%d -c%d -d%s --latency; GOMAXPROCS=%s\n", len(chain), threads, conns, dur, os.Getenv("GOMAXPROCS"))
	api, err := wrk(apiURL, "Authorization: Bearer "+secret, dur, conns, threads)
	if err != nil {
		return err
	}
	ng, err := wrk(nginxURL, "", dur, conns, threads)
	if err != nil {
		return err
	}
	fmt.Printf("certfleet API: %8.0f req/s  p99 %s\n", api.rps, api.p99)
	fmt.Printf("nginx (file) : %8.0f req/s  p99 %s\n", ng.rps, ng.p99)
	fmt.Printf("ratio        : %.2fx nginx\n", api.rps/ng.rps)
	return nil
}

type result struct {
	rps float64
	p99 string
}

var (
	rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99RE = regexp.MustCompile(`\s99%\s+(\S+)`)
	errRE = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func wrk(url, header string, dur time.Duration, conns, threads int) (result, error) {
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(dur.Seconds())) + "s", "--latency"}
	if header != "" {
		args = append(args, "-H", header)
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk %s: %w: %s", url, err, out)
	}
	if m := errRE.FindSubmatch(out); m != nil {
		return result{}, fmt.Errorf("wrk %s: %s error responses", url, m[1])
	}
	m, p := rpsRE.FindSubmatch(out), p99RE.FindSubmatch(out)
	if m == nil || p == nil {
		return result{}, fmt.Errorf("wrk output not understood: %s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	return result{rps: rps, p99: string(p[1])}, nil
}

// testChain makes a leaf and an intermediate under a throwaway root: a
// chain of the size a public CA sends.
func testChain(name string) (chain, keyPEM []byte, err error) {
	mk := func(tmpl, parent *x509.Certificate, pub, signer any) ([]byte, *x509.Certificate, error) {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			return nil, nil, err
		}
		c, err := x509.ParseCertificate(der)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), c, err
	}
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	ca := func(cn string, n int64) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root := ca("bench root", 1)
	_, rootCert, err := mk(root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, nil, err
	}
	interPEM, interCert, err := mk(ca("bench intermediate", 2), rootCert, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, nil, err
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(3), DNSNames: []string{name}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafPEM, _, err := mk(leaf, interCert, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = certfleet.MarshalPrivateKey(leafKey)
	return append(leafPEM, interPEM...), keyPEM, err
}
