package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/certfleet/certfleet/status"
)

// listings measures, at n names declared by scale, the latency of
// GET /v1/certificates pages at random cursors and with filters, and the
// time to the first line and the whole of the status table (issue 13).
// It is kept apart from the PUT and GET measurements of scale.go so that
// the two can change independently. do sends one request through the
// scale run's client, with the admin token when auth is set.
func listings(ctx context.Context, n int, base string, store scaleStore, do func(method, url string, auth bool) (int, error)) error {
	// Listings at n names: pages at random cursors, and filters (q and
	// failing are scans: fewer requests).
	list := func(what string, reqs int, urls func(i int) string) {
		var lat []time.Duration
		for i := range reqs {
			t0 := time.Now()
			if code, err := do("GET", base+urls(i), true); err != nil || code != 200 {
				fmt.Fprintf(os.Stderr, "GET %s: %d %v\n", urls(i), code, err)
				return
			}
			lat = append(lat, time.Since(t0))
		}
		fmt.Printf("GET /v1/certificates %-28s p50 %s p99 %s max %s (%d requests)\n", what, pct(lat, 50), pct(lat, 99), pct(lat, 100), reqs)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	list("first page (100)", 200, func(int) string { return "/v1/certificates" })
	list("random cursor (100)", 200, func(int) string {
		return fmt.Sprintf("/v1/certificates?after=h%06d.bench.example", rnd.IntN(n))
	})
	list("random cursor, limit 1000", 50, func(int) string {
		return fmt.Sprintf("/v1/certificates?limit=1000&after=h%06d.bench.example", rnd.IntN(n))
	})
	list("q=<a name's digits>", 10, func(int) string { return fmt.Sprintf("/v1/certificates?q=h%06d", rnd.IntN(n)) })
	list("failing=true (none)", 10, func(int) string { return "/v1/certificates?failing=true" })
	list("source=api, random cursor", 200, func(int) string {
		return fmt.Sprintf("/v1/certificates?source=api&after=h%06d.bench.example", rnd.IntN(n))
	})

	// certfleet status's table, in process on the same store.
	fl := &firstLine{start: time.Now()}
	if err := status.Certificates(ctx, fl, store, false, time.Now()); err != nil {
		return err
	}
	fmt.Printf("status table: first line after %s, %d lines in %s\n", fl.first.Round(time.Microsecond), fl.lines, time.Since(fl.start).Round(time.Millisecond))
	return nil
}

// firstLine is a writer that notes when the first line came and counts
// the lines.
type firstLine struct {
	start time.Time
	first time.Duration
	lines int
}

func (f *firstLine) Write(p []byte) (int, error) {
	if f.lines == 0 && bytes.IndexByte(p, '\n') >= 0 {
		f.first = time.Since(f.start)
	}
	f.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}
