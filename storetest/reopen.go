package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunReopen checks that what one store wrote, a store opened again on the
// same database reads back byte for byte, and that opening a second time
// (which finds nothing to migrate) changes nothing. open opens the same
// database at each call; the store is closed when t ends, or earlier by
// the test.
func RunReopen(t *testing.T, open func(t *testing.T) certfleet.Store) {
	s := open(t)
	sp := NewSpec("web", certfleet.RSA2048, certfleet.ECDSAP256)
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, []certfleet.CertificateSpec{sp}); err != nil {
		t.Fatal(err)
	}
	key := certfleet.JobKey{Spec: "web", KeyType: certfleet.RSA2048}
	if _, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "a", Now: time.Now(), Lease: time.Minute, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	iss, err := s.CompleteIssuance(t.Context(), "a", NewIssuance(sp, certfleet.RSA2048),
		certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)}, certfleet.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	wantJob, _ := s.Job(t.Context(), key)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i := range 2 { // the second reopen checks that migrating again is a no-op
		s := open(t)
		got, err := s.Issuance(t.Context(), iss.ID)
		if err != nil || got.Serial != iss.Serial || string(got.KeyPEM) != string(iss.KeyPEM) || string(got.ChainPEM) != string(iss.ChainPEM) {
			t.Errorf("reopen %d: Issuance = %+v, %v; want serial %s", i, got, err, iss.Serial)
		}
		if j, err := s.Job(t.Context(), key); err != nil || !reflect.DeepEqual(j, wantJob) {
			t.Errorf("reopen %d: Job = %+v, %v; want %+v", i, j, err, wantJob)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
