package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
)

// statusStore is a store (every optional interface kept, as in serve)
// that counts the reads a certificate's status makes.
type statusStore interface {
	httpapi.Store
	certfleet.SpecBatchWriter
	certfleet.FleetStore
}

type countingStatus struct {
	statusStore
	reads atomic.Int64
}

func (c *countingStatus) Job(ctx context.Context, k certfleet.JobKey) (certfleet.Job, error) {
	c.reads.Add(1)
	return c.statusStore.Job(ctx, k)
}

func (c *countingStatus) Attempts(ctx context.Context, k certfleet.JobKey, n int) ([]certfleet.Attempt, error) {
	c.reads.Add(1)
	return c.statusStore.Attempts(ctx, k, n)
}

func (c *countingStatus) WaitingNames(ctx context.Context, f certfleet.WaitingFilter) ([]certfleet.WaitingName, error) {
	c.reads.Add(1)
	return c.statusStore.WaitingNames(ctx, f)
}

func (c *countingStatus) AgentReports(ctx context.Context, f certfleet.AgentReportFilter) ([]certfleet.AgentReport, error) {
	c.reads.Add(1)
	return c.statusStore.AgentReports(ctx, f)
}

// TestPutNewNameReadsNothingBack (issue 13): a PUT answers with the
// status of the certificate, and read its jobs, their attempts, its
// waiting names and its agent reports back from the store to make it:
// four reads (on PostgreSQL four round trips) per PUT of a new name,
// whose jobs the PUT had just created. The store now says it created the
// certificate (SpecPutResult.CreatedAt), and the answer is made without
// reading; it is the status a read gives right after. A PUT that changes
// an existing certificate still reads.
func TestPutNewNameReadsNothingBack(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		testPutReads(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		testPutReads(t, st)
	})
}

func testPutReads(t *testing.T, st statusStore) {
	ctx := t.Context()
	cs := &countingStatus{statusStore: st}
	api := httptest.NewServer((&httpapi.Server{Store: cs}).Handler())
	t.Cleanup(api.Close)
	c := &httpapi.Client{BaseURL: api.URL, Token: mustAdminToken(t, st)}
	for i, req := range []*httpapi.NameRequest{nil, {KeyTypes: []string{"rsa2048", "ecdsa-p256"}}, {Identifiers: []string{"n2.reads.test", "www.n2.reads.test"}}} {
		name := fmt.Sprintf("n%d.reads.test", i)
		before := cs.reads.Load()
		put, err := c.PutName(ctx, name, req)
		if err != nil {
			t.Fatalf("PUT %s: %v", name, err)
		}
		if got := cs.reads.Load() - before; got != 0 {
			t.Errorf("PUT of new name %s read its status back (%d reads); want none", name, got)
		}
		got, _, _, err := c.Status(ctx, name, httpapi.FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(put, got) {
			t.Errorf("PUT %s answered\n  %+v\nthe status read after is\n  %+v", name, put, got)
		}
	}
	// Changing an existing certificate reads what it has.
	before := cs.reads.Load()
	if _, err := c.PutName(ctx, "n0.reads.test", &httpapi.NameRequest{KeyTypes: []string{"rsa2048"}}); err != nil {
		t.Fatal(err)
	}
	if cs.reads.Load() == before {
		t.Error("a PUT changing an existing certificate answered without reading its jobs")
	}
}
