package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
)

// scaleStore is what the scale run needs of a store.
type scaleStore interface {
	httpapi.Store
}

// scale declares n names through PUT /v1/names/{h} with 8 clients against
// the real httpapi.Server on a SQLite file (or PostgreSQL with dsn) over
// loopback, and measures (issue 13): the PUT rate per 10,000 names; the
// latency of GET fullchain of an issued name while the PUTs run, next to
// nginx serving the same bytes in the same run; at n names, the latency
// of GET /v1/certificates pages at random cursors and with filters; the
// time to the first line and the whole of the status table; and the
// process's RSS (server and clients share this process).
func scale(n int, dsn string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "apibench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var store scaleStore
	kind := "SQLite"
	if dsn != "" {
		kind = "PostgreSQL"
		pg, err := postgres.Open(ctx, dsn)
		if err != nil {
			return err
		}
		store = pg
	} else {
		sq, err := sqlite.Open(ctx, filepath.Join(dir, "certfleet.db"))
		if err != nil {
			return err
		}
		store = sq
	}
	defer store.Close()
	const issued = "bench.example.org"
	chain, err := seedIssued(ctx, store, issued)
	if err != nil {
		return err
	}
	id, secret, hash := certfleet.NewTokenSecret()
	if err := store.CreateToken(ctx, certfleet.Token{ID: id, Names: []string{"*"}, Permissions: []certfleet.Permission{certfleet.PermAdmin}, Hash: hash}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &httpapi.Server{Store: store}
	go httpapi.Serve(ctx, ln, srv.Handler())
	base := "http://" + ln.Addr().String()
	nginxURL, stop, err := startNginx(ctx, dir, chain)
	if err != nil {
		return err
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
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
	fmt.Printf("store %s, %d names, 8 PUT clients, GOMAXPROCS=%d, %s\n", kind, n, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))

	// GET fullchain, API and nginx, one closed loop each, while the PUTs run.
	var apiLat, ngLat []time.Duration
	putsDone := make(chan struct{})
	var wg sync.WaitGroup
	getLoop := func(url string, auth bool, out *[]time.Duration) {
		defer wg.Done()
		for {
			select {
			case <-putsDone:
				return
			default:
			}
			t0 := time.Now()
			if code, err := do("GET", url, auth); err != nil || code != 200 {
				fmt.Fprintf(os.Stderr, "GET %s: %d %v\n", url, code, err)
				return
			}
			*out = append(*out, time.Since(t0))
			time.Sleep(2 * time.Millisecond) // a reader, not a load generator
		}
	}
	wg.Add(2)
	go getLoop(base+"/v1/names/"+issued+"/fullchain", true, &apiLat)
	go getLoop(nginxURL, false, &ngLat)

	// The PUTs: 8 clients take the next name in turn.
	const slice = 10000
	var next atomic.Int64
	var failed atomic.Int64
	sliceEnd := make([]time.Time, (n+slice-1)/slice)
	var sliceMu sync.Mutex
	var sliceDone = make([]int, len(sliceEnd))
	start := time.Now()
	var pw sync.WaitGroup
	for range 8 {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				code, err := do("PUT", fmt.Sprintf("%s/v1/names/h%06d.bench.example", base, i), true)
				if err != nil || (code != 200 && code != 202) {
					if failed.Add(1) < 5 {
						fmt.Fprintf(os.Stderr, "PUT %d: %d %v\n", i, code, err)
					}
				}
				sliceMu.Lock()
				if sliceDone[i/slice]++; sliceDone[i/slice] == min(slice, n-i/slice*slice) {
					sliceEnd[i/slice] = time.Now()
					fmt.Fprintf(os.Stderr, "  %d names declared (%s)\n", min(n, (i/slice+1)*slice), time.Since(start).Round(time.Second))
				}
				sliceMu.Unlock()
			}
		}()
	}
	pw.Wait()
	total := time.Since(start)
	close(putsDone)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d PUTs failed", f)
	}
	fmt.Printf("\nPUT /v1/names/{h}: %d in %s = %.0f/s overall\n", n, total.Round(time.Millisecond), float64(n)/total.Seconds())
	prev := start
	var rates []float64
	for i, end := range sliceEnd {
		cnt := min(slice, n-i*slice)
		r := float64(cnt) / end.Sub(prev).Seconds()
		rates = append(rates, r)
		fmt.Printf("  names %6d-%6d: %6.0f/s\n", i*slice, i*slice+cnt, r)
		prev = end
	}
	if len(rates) > 1 {
		fmt.Printf("  last slice / first slice: %.2fx\n", rates[len(rates)-1]/rates[0])
	}
	fmt.Printf("GET fullchain while the PUTs ran: API p50 %s p99 %s (%d); nginx p50 %s p99 %s (%d)\n",
		pct(apiLat, 50), pct(apiLat, 99), len(apiLat), pct(ngLat, 50), pct(ngLat, 99), len(ngLat))

	if err := listings(ctx, n, base, store, do); err != nil {
		return err
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("process at %d names: RSS %s (peak %s), Go heap in use %d MB\n", n, procStatus("VmRSS"), procStatus("VmHWM"), ms.HeapInuse>>20)
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return s[i].Round(10 * time.Microsecond)
}

func procStatus(key string) string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// seedIssued puts name with an issued certificate and returns its chain.
func seedIssued(ctx context.Context, store scaleStore, name string) ([]byte, error) {
	chain, keyPEM, err := testChain(name)
	if err != nil {
		return nil, err
	}
	sp := certfleet.CertificateSpec{Name: name, Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: name}},
		KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceAPI}
	if _, err := store.PutSpec(ctx, sp); err != nil {
		return nil, err
	}
	if _, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 1}); err != nil {
		return nil, err
	}
	certs, _ := certfleet.ParseChain(chain)
	iss := certfleet.Issuance{Spec: name, KeyType: certfleet.ECDSAP256, SpecRevision: sp.Revision(certfleet.ECDSAP256), Identifiers: sp.Identifiers,
		Serial: certs[0].SerialNumber.Text(16), Fingerprint: certfleet.Fingerprint(certs[0]), NotBefore: certs[0].NotBefore, NotAfter: certs[0].NotAfter,
		ChainPEM: chain, KeyPEM: keyPEM, IssuedAt: time.Now()}
	_, err = store.CompleteIssuance(ctx, "bench", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)},
		certfleet.Attempt{JobKey: certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256}, Instance: "bench", Outcome: certfleet.OutcomeIssued})
	return chain, err
}

// startNginx serves chain as /fullchain.pem from dir, with one worker
// process.
func startNginx(ctx context.Context, dir string, chain []byte) (string, func(), error) {
	return startNginxWorkers(ctx, dir, chain, 1)
}

// startNginxWorkers serves chain as /fullchain.pem from dir, with workers
// worker processes.
func startNginxWorkers(ctx context.Context, dir string, chain []byte, workers int) (string, func(), error) {
	if err := os.WriteFile(filepath.Join(dir, "fullchain.pem"), chain, 0o644); err != nil {
		return "", nil, err
	}
	nln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	nport := nln.Addr().(*net.TCPAddr).Port
	nln.Close()
	conf := fmt.Sprintf(`worker_processes %[3]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server { listen 127.0.0.1:%[2]d; root %[1]s; location / { default_type application/x-pem-file; } }
}
`, dir, nport, workers)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	nginx := exec.CommandContext(ctx, "nginx", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	nginx.Stderr = os.Stderr
	if err := nginx.Start(); err != nil {
		return "", nil, fmt.Errorf("start nginx (apt-get install nginx-light): %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	return fmt.Sprintf("http://127.0.0.1:%d/fullchain.pem", nport), func() { _ = nginx.Process.Signal(os.Interrupt); _ = nginx.Wait() }, nil
}
