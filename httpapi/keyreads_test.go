package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestGetCertificateKeyReadsAggregated is issue 17's finding: Caddy asks
// get_certificate at every handshake, and 296 handshakes wrote 296
// key-read rows. A consumer re-reading the same key version is now one
// record at its first read and then one per interval with the count; a
// second consumer is recorded as its own.
func TestGetCertificateKeyReadsAggregated(t *testing.T) {
	e := newEnv(t, 0)
	const interval = 700 * time.Millisecond
	e.srv.KeyReadInterval = interval
	ctx := t.Context()
	name := "caddy.agg.test"
	e.issue(name, nil)
	caddy := e.token(nil, true, certfleet.PermReadKeys)
	other := e.token(nil, true, certfleet.PermReadKeys)
	get := func(secret string) {
		t.Helper()
		resp, body := httpGet(t, e.urlAPI.URL+"/u/"+secret+"/v1/tls/get_certificate?server_name="+name, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("get_certificate: %d %s", resp.StatusCode, body)
		}
	}
	reads := func() []certfleet.KeyRead {
		t.Helper()
		rs, err := e.store.KeyReads(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	const handshakes = 296
	start := time.Now()
	for range handshakes {
		get(caddy)
	}
	if time.Since(start) > interval {
		t.Skipf("%d requests took %v, longer than the interval: too slow a machine for this test's timing", handshakes, time.Since(start))
	}
	rs := reads()
	if len(rs) != 1 || rs[0].Count > 1 {
		t.Fatalf("after %d reads within the interval: %d records (%+v), want 1 (the first read, at once)", handshakes, len(rs), rs)
	}
	get(other)
	if rs := reads(); len(rs) != 2 || rs[0].TokenID == rs[1].TokenID {
		t.Fatalf("another consumer's read: %+v, want its own record", rs)
	}
	// The interval ends: one record with the count of the others.
	deadline := time.Now().Add(5 * time.Second)
	for len(reads()) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	rs = reads()
	if len(rs) != 3 {
		t.Fatalf("after the interval: %d records %+v, want 3", len(rs), rs)
	}
	agg := rs[0]
	if agg.Count != handshakes-1 || agg.TokenID != rs[2].TokenID || agg.IssuanceID != rs[2].IssuanceID {
		t.Fatalf("aggregated record = %+v, want %d reads by the first consumer of the same version", agg, handshakes-1)
	}
	evs, err := e.store.Events(ctx, certfleet.EventFilter{Kind: certfleet.EventKeyRead})
	if err != nil {
		t.Fatal(err)
	}
	repeated := 0
	for _, ev := range evs {
		if ev.Reason == "repeated" && ev.Detail != "" {
			repeated++
		}
	}
	if len(evs) != 3 || repeated != 1 {
		t.Fatalf("audit events = %+v, want 3 with the aggregated one saying how many", evs)
	}
}
