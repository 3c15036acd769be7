package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/dashboard"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/status"
	"github.com/jackc/pgx/v5"
)

// listStore is what the listing run needs of a store.
type listStore interface {
	httpapi.Store
	dashboard.Store
}

// listingBench (-listings N) measures every page and filter of GET
// /v1/certificates and of the dashboard's list at n certificates (issue
// 13), on a SQLite file or PostgreSQL (dsn), next to two references in
// the same run: nginx serving a static file the size of an API page over
// the same client, and the store's plain primary-key read of one spec; and
// the store's CertificatePage in process, and certfleet status's table.
//
//	go run ./internal/cmd/apibench -listings 100000 [-postgres DSN]
//
// The store is filled directly (not through PUTs, which scale measures):
// n certificates hNNNNNN.bench.example of source config, 5% of them of
// source inv; 10% of tenant t1 (hNNNNNN.t1.bench.example) and 10 of tenant
// tiny; 1% failing; 5% issued. On PostgreSQL, with analyze, ANALYZE runs
// after the fill.
func listingBench(n int, dsn string, analyze bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "apibench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var store listStore
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
	fmt.Printf("listings: store %s, %d certificates, GOMAXPROCS=%d, %s\n", kind, n, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	t0 := time.Now()
	names, err := fillListing(ctx, store, n)
	if err != nil {
		return err
	}
	fmt.Printf("filled in %s\n", time.Since(t0).Round(time.Second))
	if dsn != "" && analyze {
		// Statistics as autoanalyze makes them shortly after a bulk load:
		// without them PostgreSQL walks a whole search term by bitmap and
		// sorts it for a page's bound (0.2 s at 100,000; see BENCHMARKS).
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, `ANALYZE`)
		c.Close(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("ANALYZE done\n")
	}

	// Tokens: the operator's admin, tenant t1's and tenant tiny's readers.
	token := func(tenant string, names []string, perm certfleet.Permission) (string, error) {
		id, secret, hash := certfleet.NewTokenSecret()
		return secret, store.CreateToken(ctx, certfleet.Token{ID: id, Tenant: tenant, Names: names, Permissions: []certfleet.Permission{perm}, Hash: hash, CreatedAt: time.Now()})
	}
	admin, err := token("", []string{"*"}, certfleet.PermAdmin)
	if err != nil {
		return err
	}
	t1, err := token("t1", []string{"*.t1.bench.example"}, certfleet.PermReadCerts)
	if err != nil {
		return err
	}
	tiny, err := token("tiny", []string{"*.tiny.bench.example"}, certfleet.PermReadCerts)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", (&dashboard.Server{Store: store}).Handler())
	mux.Handle("/", (&httpapi.Server{Store: store}).Handler())
	go httpapi.Serve(ctx, ln, mux)
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u, bearer string, cookie *http.Cookie) (int, int, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, len(b), nil
	}
	login := func(secret string) (*http.Cookie, error) {
		resp, err := client.PostForm(base+"/dashboard/login", url.Values{"token": {secret}})
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			return c, nil
		}
		return nil, fmt.Errorf("dashboard login: status %d, no cookie", resp.StatusCode)
	}
	adminC, err := login(admin)
	if err != nil {
		return err
	}
	t1C, err := login(t1)
	if err != nil {
		return err
	}

	rnd := rand.New(rand.NewPCG(1, 2))
	randName := func() string { return names[rnd.IntN(len(names))] }
	const reqs = 200
	var worst time.Duration
	var worstWhat string
	measure := func(what string, urls func() string, bearer string, cookie *http.Cookie) (int, error) {
		lat := make([]time.Duration, 0, reqs)
		size := 0
		for range reqs {
			u := urls()
			t0 := time.Now()
			code, n, err := get(base+u, bearer, cookie)
			if err != nil || code != 200 {
				return 0, fmt.Errorf("GET %s: %d %v", u, code, err)
			}
			lat = append(lat, time.Since(t0))
			size = max(size, n)
		}
		p99 := pct(lat, 99)
		// The worst of the default pages (100 API certificates, 50 on the
		// dashboard); limit=1000 is ten pages' worth and shown apart.
		if p99 > worst && !strings.Contains(what, "limit 1000") {
			worst, worstWhat = p99, what
		}
		fmt.Printf("  %-52s p50 %8s p99 %8s max %8s  (%d B)\n", what, pct(lat, 50), p99, pct(lat, 100), size)
		return size, nil
	}
	api := func(what string, urls func() string, bearer string) (int, error) {
		return measure("API "+what, urls, bearer, nil)
	}
	fixed := func(u string) func() string { return func() string { return u } }

	fmt.Printf("\nstore.CertificatePage in process (limit 100), %d calls each:\n", reqs)
	for _, c := range []struct {
		what string
		q    func() certfleet.CertificateQuery
	}{
		{"random cursor", func() certfleet.CertificateQuery { return certfleet.CertificateQuery{After: randName()} }},
		{"q=bench.example, random cursor", func() certfleet.CertificateQuery {
			return certfleet.CertificateQuery{Search: "bench.example", After: randName()}
		}},
		{"failing, random cursor", func() certfleet.CertificateQuery { return certfleet.CertificateQuery{Failing: true, After: randName()} }},
		{"tenant tiny, q=bench.example, random cursor", func() certfleet.CertificateQuery {
			return certfleet.CertificateQuery{Tenant: "tiny", Search: "bench.example", After: randName()}
		}},
	} {
		lat := make([]time.Duration, 0, reqs)
		for range reqs {
			q := c.q()
			t0 := time.Now()
			if _, err := store.CertificatePage(ctx, q); err != nil {
				return err
			}
			lat = append(lat, time.Since(t0))
		}
		fmt.Printf("  %-52s p50 %8s p99 %8s max %8s\n", "store "+c.what, pct(lat, 50), pct(lat, 99), pct(lat, 100))
	}

	fmt.Printf("\nGET /v1/certificates (limit 100 unless said), %d requests each, one client:\n", reqs)
	pageSize, err := api("first page", fixed("/v1/certificates"), admin)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		what   string
		urls   func() string
		bearer string
	}{
		{"random cursor", func() string { return "/v1/certificates?after=" + randName() }, admin},
		{"random cursor, limit 1000", func() string { return "/v1/certificates?limit=1000&after=" + randName() }, admin},
		{"q=<a whole name> (1 match)", func() string { return "/v1/certificates?q=" + randName() }, admin},
		{"q=<a name's first label> (1 match)", func() string { return "/v1/certificates?q=" + strings.SplitN(randName(), ".", 2)[0] }, admin},
		{"q=bench.example (all), random cursor", func() string { return "/v1/certificates?q=bench.example&after=" + randName() }, admin},
		{"q=t1.bench.example (10%), random cursor", func() string { return "/v1/certificates?q=t1.bench.example&after=" + randName() }, admin},
		{"q=nosuch (none)", fixed("/v1/certificates?q=nosuch"), admin},
		{"failing=true (1%), first page", fixed("/v1/certificates?failing=true"), admin},
		{"failing=true, random cursor", func() string { return "/v1/certificates?failing=true&after=" + randName() }, admin},
		{"failing=true&q=bench.example, random cursor", func() string { return "/v1/certificates?failing=true&q=bench.example&after=" + randName() }, admin},
		{"source=inv (5%), random cursor", func() string { return "/v1/certificates?source=inv&after=" + randName() }, admin},
		{"source=config&failing=true, random cursor", func() string { return "/v1/certificates?source=config&failing=true&after=" + randName() }, admin},
		{"tenant=t1 (10%), random cursor", func() string { return "/v1/certificates?tenant=t1&after=" + randName() }, admin},
		{"tenant=tiny (10), first page", fixed("/v1/certificates?tenant=tiny"), admin},
		{"tenant=tiny&q=bench.example (rare in the term)", func() string { return "/v1/certificates?tenant=tiny&q=bench.example&after=" + randName() }, admin},
		{"tenant t1's token, random cursor", func() string { return "/v1/certificates?after=" + randName() }, t1},
		{"tenant t1's token, q=bench.example", func() string { return "/v1/certificates?q=bench.example&after=" + randName() }, t1},
		{"tenant tiny's token, first page", fixed("/v1/certificates"), tiny},
	} {
		if _, err := api(c.what, c.urls, c.bearer); err != nil {
			return err
		}
	}

	fmt.Printf("\nGET /dashboard/ (50 a page), %d requests each, one client:\n", reqs)
	for _, c := range []struct {
		what   string
		urls   func() string
		cookie *http.Cookie
	}{
		{"first page", fixed("/dashboard/"), adminC},
		{"after a random cursor", func() string { return "/dashboard/?after=" + randName() }, adminC},
		{"before a random cursor", func() string { return "/dashboard/?before=" + randName() }, adminC},
		{"q=<a whole name>", func() string { return "/dashboard/?q=" + randName() }, adminC},
		{"q=bench.example, random cursor", func() string { return "/dashboard/?q=bench.example&after=" + randName() }, adminC},
		{"status=failing", fixed("/dashboard/?status=failing"), adminC},
		{"status=failing, random cursor", func() string { return "/dashboard/?status=failing&after=" + randName() }, adminC},
		{"status=ok (5%), random cursor", func() string { return "/dashboard/?status=ok&after=" + randName() }, adminC},
		{"status=expired (none)", func() string { return "/dashboard/?status=expired&after=" + randName() }, adminC},
		{"status=pending, random cursor", func() string { return "/dashboard/?status=pending&after=" + randName() }, adminC},
		{"tenant t1's session, random cursor", func() string { return "/dashboard/?after=" + randName() }, t1C},
	} {
		if _, err := measure("dashboard "+c.what, c.urls, "", c.cookie); err != nil {
			return err
		}
	}
	listWorst, listWorstWhat := worst, worstWhat

	// The references, in the same run: nginx serving a static file the
	// size of an API page, and the store's primary-key read.
	body := []byte(strings.Repeat("x", pageSize))
	nginxURL, stop, err := startNginx(ctx, dir, body)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("\nreferences:\n")
	lat := make([]time.Duration, 0, reqs)
	for range reqs {
		t0 := time.Now()
		if code, _, err := get(nginxURL, "", nil); err != nil || code != 200 {
			return fmt.Errorf("nginx: %d %v", code, err)
		}
		lat = append(lat, time.Since(t0))
	}
	ng99 := pct(lat, 99)
	fmt.Printf("  %-52s p50 %8s p99 %8s max %8s  (%d B)\n", "nginx, a static file of the first page's size", pct(lat, 50), ng99, pct(lat, 100), pageSize)
	lat = lat[:0]
	for range reqs {
		t0 := time.Now()
		if _, err := store.Spec(ctx, randName()); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	pk99 := pct(lat, 99)
	fmt.Printf("  %-52s p50 %8s p99 %8s max %8s\n", "store.Spec(name), the primary-key read", pct(lat, 50), pk99, pct(lat, 100))
	fmt.Printf("\nworst p99 of the default pages, every filter: %s (%s) = %.1fx nginx's p99, %.1fx the primary-key read's\n",
		listWorst, listWorstWhat, float64(listWorst)/float64(ng99), float64(listWorst)/float64(pk99))

	// certfleet status's table, in process on the same store.
	fl := &firstLine{start: time.Now()}
	if err := status.Certificates(ctx, fl, store, false, time.Now()); err != nil {
		return err
	}
	fmt.Printf("status table: first line after %s, %d lines in %s\n", fl.first.Round(time.Microsecond), fl.lines, time.Since(fl.start).Round(time.Millisecond))
	return nil
}

// fillListing puts the listing run's n certificates and returns their
// names.
func fillListing(ctx context.Context, store listStore, n int) ([]string, error) {
	for _, t := range []certfleet.Tenant{{Name: "t1", Names: []string{"*.t1.bench.example"}}, {Name: "tiny", Names: []string{"*.tiny.bench.example"}}} {
		if _, err := store.CreateTenant(ctx, t); err != nil {
			return nil, err
		}
	}
	bySource := map[string][]certfleet.CertificateSpec{}
	names := make([]string, 0, n)
	for i := range n {
		host, tenant, source := fmt.Sprintf("h%06d.bench.example", i), "", certfleet.SourceConfig
		switch {
		case i%10 == 3:
			host, tenant = fmt.Sprintf("h%06d.t1.bench.example", i), "t1"
		case i%(n/10) == 5:
			host, tenant = fmt.Sprintf("h%06d.tiny.bench.example", i), "tiny"
		}
		if i%20 == 7 {
			source = "inv"
		}
		sp := certfleet.CertificateSpec{Name: host, Tenant: tenant, Source: source, Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: host}},
			KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01}
		bySource[source] = append(bySource[source], sp)
		names = append(names, host)
	}
	for source, specs := range bySource {
		for i := 0; i < len(specs); i += 10000 {
			// One source's specs are synced whole: grow the set.
			if _, err := store.SyncSpecs(ctx, source, specs[:min(len(specs), i+10000)]); err != nil {
				return nil, err
			}
			fmt.Fprintf(os.Stderr, "  %s: %d specs\n", source, min(len(specs), i+10000))
		}
	}
	// 1% failing, 5% issued: claimed, then failed or completed.
	now := time.Now()
	jobs, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: now.Add(time.Second), Lease: time.Hour, Limit: n * 6 / 100})
	if err != nil {
		return nil, err
	}
	for i, j := range jobs {
		if i%6 == 0 {
			if err := store.FailJob(ctx, j.JobKey, "bench", certfleet.Attempt{JobKey: j.JobKey, Instance: "bench", StartedAt: now, FinishedAt: now,
				Outcome: certfleet.OutcomeFailed, Error: "bench: validation failed"}, now.Add(time.Hour)); err != nil {
				return nil, err
			}
			continue
		}
		sp, err := store.Spec(ctx, j.Spec)
		if err != nil {
			return nil, err
		}
		iss := certfleet.Issuance{Spec: sp.Name, KeyType: j.KeyType, SpecRevision: sp.Revision(j.KeyType), Identifiers: sp.Identifiers,
			Serial: fmt.Sprintf("%x", i+1), Fingerprint: fmt.Sprintf("%064x", i+1), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(60 * 24 * time.Hour),
			ChainPEM: []byte("bench chain"), IssuedAt: now}
		if _, err := store.CompleteIssuance(ctx, "bench", iss, certfleet.ScheduleUpdate{NextAt: now.Add(40 * 24 * time.Hour)},
			certfleet.Attempt{JobKey: j.JobKey, Instance: "bench", StartedAt: now, FinishedAt: now, Outcome: certfleet.OutcomeIssued}); err != nil {
			return nil, err
		}
	}
	return names, nil
}
