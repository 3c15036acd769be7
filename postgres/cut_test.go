package postgres_test

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/cutproxy"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/storetest"
)

// TestConnectionCutIsUnavailable: reads whose connections are cut while
// they run (a database restart, a failover) fail as the database being
// unreachable, EUNAVAILABLE, however far the reply had come; a read cut
// mid-reply ended in a bare "unexpected EOF", which the scheduler took
// for the job's own failure and backed off for a minute (issue 16, found
// by the combined failover run, BENCHMARKS §13).
func TestConnectionCutIsUnavailable(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cutproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u.Host = p.Addr()
	s := mustOpen(t, u.String())
	var specs []certfleet.CertificateSpec
	for i := range 300 {
		specs = append(specs, storetest.NewSpec(fmt.Sprintf("cut-%03d", i)))
	}
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	codes := make(map[string]int)
	var (
		mu      sync.Mutex
		example = make(map[string]error)
	)
	for round := range 10 {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := s.Jobs(t.Context(), certfleet.JobFilter{}); err != nil {
						mu.Lock()
						c := certfleet.ErrorCode(err)
						codes[c]++
						example[c] = err
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(50+round*17) * time.Millisecond)
		p.Cut()
		time.Sleep(100 * time.Millisecond)
		close(stop)
		wg.Wait()
		if err := p.Restore(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("errors by code during the cuts: %v", codes)
	for c, n := range codes {
		if c != certfleet.EUNAVAILABLE {
			t.Errorf("%d reads failed with code %q, e.g. %v; want %s", n, c, example[c], certfleet.EUNAVAILABLE)
		}
	}
	if codes[certfleet.EUNAVAILABLE] == 0 {
		t.Errorf("no read failed during the cuts")
	}
}
