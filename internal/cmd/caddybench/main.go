// Command caddybench measures the Caddy get_certificate path for
// BENCHMARKS.md §14 (issue 17): full TLS handshakes per second through a
// real Caddy (Debian's 2.6, installed by .ci/install-caddy.sh) whose site
// asks certfleet's URL-credential API for its certificate at every
// handshake (tls { get_certificate http … }), next to the same Caddy
// serving the same certificate from files, in the same run; and the
// key-read audit rows certfleet writes per 1,000 handshakes, with reads
// aggregated per consumer and interval (the default) and with every read
// recorded (KeyReadInterval < 0, as before issue 17).
//
//	go run ./internal/cmd/caddybench -d 10s -c 8
//
// The certificate is a self-signed ECDSA P-256 one for bench.test, put in a
// new SQLite store as an issuance; no CA is involved. Runs alternate
// (files, certfleet, files, certfleet aggregated, certfleet per-read) to
// spread the machine's drift over both.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/sqlite"
)

const name = "bench.test"

func main() {
	dur := flag.Duration("d", 10*time.Second, "length of each measured run")
	conc := flag.Int("c", 8, "handshakes in flight")
	caddyBin := flag.String("caddy", "caddy", "the caddy binary")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := run(ctx, *caddyBin, *dur, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "caddybench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, caddyBin string, dur time.Duration, conc int) error {
	if _, err := exec.LookPath(caddyBin); err != nil {
		return fmt.Errorf("%w: install Caddy with .ci/install-caddy.sh", err)
	}
	dir, err := os.MkdirTemp("", "caddybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certPEM, keyPEM, fp, err := selfSigned()
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}

	// certfleet: a store holding the certificate, the URL API on loopback.
	store, err := sqlite.Open(ctx, filepath.Join(dir, "certfleet.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	secret, err := fill(ctx, store, certPEM, keyPEM)
	if err != nil {
		return err
	}
	api := &httpapi.Server{Store: store}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	apiCtx, stopAPI := context.WithCancel(ctx)
	defer stopAPI()
	go httpapi.Serve(apiCtx, apiLn, api.URLHandler())

	// Two Caddy processes, one site each: in one process the site with
	// the files would put the certificate in Caddy's cache, and the
	// get_certificate site would be served from it without asking.
	portCF, portFiles := freePort(), freePort()
	for _, c := range []struct {
		what string
		port int
		tls  string
	}{
		{"certfleet", portCF, fmt.Sprintf("tls {\n\t\tget_certificate http http://%s/u/%s/v1/tls/get_certificate\n\t}", apiLn.Addr(), secret)},
		{"files", portFiles, fmt.Sprintf("tls %s %s", certFile, keyFile)},
	} {
		stop, err := startCaddy(ctx, caddyBin, filepath.Join(dir, c.what), c.port, c.tls, fp)
		if err != nil {
			return fmt.Errorf("caddy serving from %s: %w", c.what, err)
		}
		defer stop()
	}
	out, _ := exec.Command(caddyBin, "version").Output()
	fmt.Printf("caddy %s, %d handshakes in flight, %v per run, machine: %d CPUs\n", strings.TrimSpace(string(out)), conc, dur, numCPU())

	type result struct {
		what       string
		handshakes int64
		rate       float64
		rows       int
		reads      int
	}
	var results []result
	measure := func(what string, port int, interval time.Duration) error {
		api.KeyReadInterval = interval
		api.FlushKeyReads()
		before, err := store.KeyReads(ctx, 0)
		if err != nil {
			return err
		}
		n, elapsed, err := handshakes(ctx, port, fp, conc, dur)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		api.FlushKeyReads() // the counts of the last interval
		after, err := store.KeyReads(ctx, 0)
		if err != nil {
			return err
		}
		rows := after[:len(after)-len(before)]
		reads := 0
		for _, r := range rows {
			reads += max(r.Count, 1)
		}
		results = append(results, result{what, n, float64(n) / elapsed.Seconds(), len(rows), reads})
		fmt.Printf("  %-36s %8d handshakes %9.0f/s  key-read rows %6d (reads recorded %d)\n", what, n, float64(n)/elapsed.Seconds(), len(rows), reads)
		return nil
	}
	// Warm-up, then alternate.
	if _, _, err := handshakes(ctx, portCF, fp, conc, time.Second); err != nil {
		return err
	}
	for _, m := range []struct {
		what     string
		port     int
		interval time.Duration
	}{
		{"files", portFiles, 0},
		{"certfleet get_certificate, aggregated", portCF, 0},
		{"files", portFiles, 0},
		{"certfleet get_certificate, per read", portCF, -1},
		{"certfleet get_certificate, aggregated", portCF, 0},
	} {
		if err := measure(m.what, m.port, m.interval); err != nil {
			return err
		}
	}
	var files, agg, per []float64
	var aggRows, aggN, perRows, perN float64
	for _, r := range results {
		switch r.what {
		case "files":
			files = append(files, r.rate)
		case "certfleet get_certificate, aggregated":
			agg = append(agg, r.rate)
			aggRows += float64(r.rows)
			aggN += float64(r.handshakes)
		default:
			per = append(per, r.rate)
			perRows += float64(r.rows)
			perN += float64(r.handshakes)
		}
	}
	fmt.Printf("mean handshakes/s: files %.0f, certfleet (aggregated) %.0f, ratio %.2f; certfleet (per read) %.0f, ratio %.2f\n",
		mean(files), mean(agg), mean(agg)/mean(files), mean(per), mean(per)/mean(files))
	fmt.Printf("key-read audit rows per 1,000 handshakes: aggregated %.2f, per read %.0f\n", 1000*aggRows/aggN, 1000*perRows/perN)
	return nil
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func numCPU() int { return runtimeNumCPU() }

// startCaddy runs caddy with one site, bench.test on port with the tls
// directive tlsDir, its own data directory under dir, the admin endpoint and
// automatic HTTPS off (certfleet's names must not be managed by Caddy's own
// ACME automation too: docs/consumers.md), and waits until a handshake
// presents the certificate. stop kills it.
func startCaddy(ctx context.Context, caddyBin, dir string, port int, tlsDir string, fp [32]byte) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	skip_install_trust
	storage file_system %s
}
https://%s:%d {
	%s
	respond "ok"
}
`, filepath.Join(dir, "data"), name, port, tlsDir)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, caddyBin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	if err := waitHandshake(ctx, port, fp); err != nil {
		stop()
		return nil, fmt.Errorf("%w\ncaddy's log:\n%s", err, log.String())
	}
	return stop, nil
}

// fill stores the certificate as the current issuance of a spec for name,
// and returns a URL credential allowed to read its key.
func fill(ctx context.Context, store *sqlite.Store, certPEM, keyPEM []byte) (string, error) {
	sp := certfleet.CertificateSpec{Name: "bench", Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: name}},
		KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceConfig}
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{sp}); err != nil {
		return "", err
	}
	now := time.Now()
	jobs, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: now, Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 1 {
		return "", fmt.Errorf("claim the job: %v (%d jobs)", err, len(jobs))
	}
	sum := sha256.Sum256(certPEM)
	iss := certfleet.Issuance{Spec: sp.Name, KeyType: certfleet.ECDSAP256, SpecRevision: sp.Revision(certfleet.ECDSAP256),
		Identifiers: sp.Identifiers, Serial: "01", Fingerprint: fmt.Sprintf("%x", sum), NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(90 * 24 * time.Hour), ChainPEM: certPEM, KeyPEM: keyPEM, ARICertID: "bench.01", CA: "self-signed",
		AccountURL: "-", OrderURL: "-", CertURL: "-", IssuedAt: now}
	if _, err := store.CompleteIssuance(ctx, "bench", iss, certfleet.ScheduleUpdate{NextAt: now.Add(60 * 24 * time.Hour)}, certfleet.Attempt{Instance: "bench"}); err != nil {
		return "", err
	}
	id, secret, hash := certfleet.NewTokenSecret()
	return secret, store.CreateToken(ctx, certfleet.Token{ID: id, Description: "caddy", Names: []string{name},
		Permissions: []certfleet.Permission{certfleet.PermReadKeys}, URLCredential: true, Hash: hash, CreatedAt: now})
}

// selfSigned makes an ECDSA P-256 certificate for name; fp is the SHA-256
// of its DER, to check what a handshake presents.
func selfSigned() (certPEM, keyPEM []byte, fp [32]byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fp, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fp, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fp, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), sha256.Sum256(der), nil
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// handshake makes one full TLS handshake (no session resumption) with
// 127.0.0.1:port for name and checks the certificate presented.
func handshake(ctx context.Context, port int, fp [32]byte) error {
	d := tls.Dialer{Config: &tls.Config{ServerName: name, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 || sha256.Sum256(certs[0].Raw) != fp {
		return errors.New("the handshake presented another certificate")
	}
	return nil
}

func waitHandshake(ctx context.Context, port int, fp [32]byte) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := handshake(ctx, port, fp)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// handshakes runs conc loops of handshakes with port for d and returns how
// many completed; any failed handshake fails the run.
func handshakes(ctx context.Context, port int, fp [32]byte, conc int, d time.Duration) (int64, time.Duration, error) {
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for range conc {
		wg.Go(func() {
			for time.Now().Before(stop) && ctx.Err() == nil {
				if err := handshake(ctx, port, fp); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load(), time.Since(start), firstErr
}

func runtimeNumCPU() int { return runtime.NumCPU() }
