package endpoint_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/endpoint"
)

// served is the Result of a check that saw l.
func served(l leaf) endpoint.Result {
	return endpoint.Result{
		Leaf: l.cert, Fingerprint: l.iss.Fingerprint, Serial: l.iss.Serial,
		NotAfter: l.cert.NotAfter, ChainVerified: true,
	}
}

func TestCompare(t *testing.T) {
	ca := newTestCA(t, "test")
	other := newTestCA(t, "someone else")
	t0 := time.Now().Truncate(time.Second)
	names := []string{"www.example.test", "example.test"}
	old := ca.issue(t, names, t0.Add(-48*time.Hour), t0.Add(time.Hour), false)
	cur := ca.issue(t, names, t0.Add(-time.Hour), t0.Add(24*time.Hour), false)
	curRSA := ca.issue(t, names, t0.Add(-time.Hour), t0.Add(24*time.Hour), true)
	foreignOld := other.issue(t, names, t0.Add(-72*time.Hour), t0.Add(2*time.Hour), false)
	foreignNew := other.issue(t, names, t0, t0.Add(48*time.Hour), false)
	foreignSubset := other.issue(t, names[:1], t0.Add(-72*time.Hour), t0.Add(2*time.Hour), false)
	otherNames := ca.issue(t, []string{"mail.example.test"}, t0.Add(-time.Hour), t0.Add(24*time.Hour), false)

	want := endpoint.Expectation{
		Current:    []certfleet.Issuance{cur.iss},
		Archive:    []certfleet.Issuance{cur.iss, old.iss},
		WarnBefore: 2 * time.Hour,
	}
	dual := want
	dual.Current = []certfleet.Issuance{cur.iss, curRSA.iss}
	noArchive := want
	noArchive.Archive = nil
	noWarn := want
	noWarn.WarnBefore = 0
	unverified := served(cur)
	unverified.ChainVerified, unverified.VerifyError = false, "x509: certificate signed by unknown authority"

	for _, tc := range []struct {
		name     string
		res      endpoint.Result
		want     endpoint.Expectation
		now      time.Time
		status   endpoint.Status
		issuance int64    // Verdict.ServedIssuance
		wantSer  string   // Verdict.WantSerial
		msg      []string // parts of the message
		warnings int
	}{
		{"current", served(cur), want, t0, endpoint.StatusOK, cur.iss.ID, cur.iss.Serial, []string{"serves the current certificate", certfleet.FormatSerial(cur.iss.Serial)}, 0},
		{"dual, RSA served", served(curRSA), dual, t0, endpoint.StatusOK, curRSA.iss.ID, curRSA.iss.Serial, []string{"rsa2048"}, 0},
		{"dual, ECDSA served", served(cur), dual, t0, endpoint.StatusOK, cur.iss.ID, cur.iss.Serial, []string{"ecdsa-p256"}, 0},
		{"current, expiring", served(cur), want, cur.cert.NotAfter.Add(-90 * time.Minute), endpoint.StatusExpiring, cur.iss.ID, cur.iss.Serial, []string{"expires in 1h30m0s", "renewal is late"}, 0},
		{"current, at the warning edge", served(cur), want, cur.cert.NotAfter.Add(-2*time.Hour - time.Second), endpoint.StatusOK, cur.iss.ID, cur.iss.Serial, nil, 0},
		{"current, expired", served(cur), want, cur.cert.NotAfter, endpoint.StatusExpired, cur.iss.ID, cur.iss.Serial, []string{"expired at"}, 0},
		{"current, no warning margin", served(cur), noWarn, cur.cert.NotAfter.Add(-time.Minute), endpoint.StatusOK, cur.iss.ID, cur.iss.Serial, nil, 0},
		{"current, chain unverified", unverified, want, t0, endpoint.StatusOK, cur.iss.ID, cur.iss.Serial, nil, 1},
		{"older issuance", served(old), want, t0, endpoint.StatusStale, old.iss.ID, cur.iss.Serial,
			[]string{"older certificate", certfleet.FormatSerial(old.iss.Serial), certfleet.FormatSerial(cur.iss.Serial), "issuance " + strconv.FormatInt(old.iss.ID, 10), "reload"}, 0},
		{"older issuance, expired", served(old), want, old.cert.NotAfter.Add(time.Second), endpoint.StatusStale, old.iss.ID, cur.iss.Serial, []string{"which has expired"}, 0},
		{"older issuance, archive not given", served(old), noArchive, t0, endpoint.StatusStale, 0, cur.iss.Serial, []string{"did not issue", certfleet.FormatSerial(old.iss.Serial), certfleet.FormatSerial(cur.iss.Serial)}, 0},
		{"older certificate from before certfleet", served(foreignOld), want, t0, endpoint.StatusStale, 0, cur.iss.Serial, []string{"did not issue", "someone else intermediate", certfleet.FormatSerial(foreignOld.iss.Serial)}, 0},
		{"newer certificate not ours", served(foreignNew), want, t0, endpoint.StatusMismatch, 0, cur.iss.Serial, []string{"newer certificate", "not issue"}, 0},
		{"older certificate with fewer names", served(foreignSubset), want, t0, endpoint.StatusMismatch, 0, cur.iss.Serial, []string{"other names", "names www.example.test example.test"}, 0},
		{"other names", served(otherNames), want, t0, endpoint.StatusMismatch, 0, cur.iss.Serial, []string{"other names", "mail.example.test", "check the SNI name"}, 0},
		{"nothing issued", served(cur), endpoint.Expectation{}, t0, endpoint.StatusUnknown, 0, "", []string{"nothing issued yet"}, 0},
		{"empty result", endpoint.Result{}, endpoint.Expectation{Current: []certfleet.Issuance{{ID: 1, Serial: "1"}}}, t0, endpoint.StatusMismatch, 0, "1", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := endpoint.Compare(tc.res, tc.want, tc.now)
			t.Log(v.Status, v.Message)
			if v.Status != tc.status || v.ServedIssuance != tc.issuance || v.WantSerial != tc.wantSer {
				t.Errorf("got %s, issuance %d, want serial %s; want %s, %d, %s (%s)", v.Status, v.ServedIssuance, v.WantSerial, tc.status, tc.issuance, tc.wantSer, v.Message)
			}
			if v.ServedSerial != tc.res.Serial || !v.ServedNotAfter.Equal(tc.res.NotAfter) {
				t.Errorf("served %s %v, want %s %v", v.ServedSerial, v.ServedNotAfter, tc.res.Serial, tc.res.NotAfter)
			}
			for _, part := range tc.msg {
				if !strings.Contains(v.Message, part) {
					t.Errorf("message %q does not contain %q", v.Message, part)
				}
			}
			if len(v.Warnings) != tc.warnings {
				t.Errorf("warnings %q, want %d", v.Warnings, tc.warnings)
			}
			if (v.Err() == nil) != (tc.status == endpoint.StatusOK) || v.OK() != (tc.status == endpoint.StatusOK) {
				t.Errorf("Err() = %v, OK() = %v for status %s", v.Err(), v.OK(), v.Status)
			}
			if v.Err() != nil && v.Err().Error() != v.Message {
				t.Errorf("Err() %q, want the message", v.Err())
			}
		})
	}
}
