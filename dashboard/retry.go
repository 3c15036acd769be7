package dashboard

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/certfleet/certfleet"
)

// Retry feedback (issue 15, finding 7: a retry said "due now" and nothing
// about what came of it). After making the jobs due, the retry waits a
// moment for a live scheduler to take them, and the certificate page then
// says per key type what happened since the retry: ordered (in flight),
// issued, failed, deferred and why, found not due, or not picked up (and
// whether any scheduler runs at all).
const (
	// DefaultRetryWait is how long a retry waits for a scheduler to take
	// the jobs before the page is shown: long enough for a woken scheduler
	// to claim them, short enough for a button press.
	DefaultRetryWait = 3 * time.Second
	// retryPoll is how often the jobs are looked at while waiting.
	retryPoll = 150 * time.Millisecond
	// retryFeedbackFor is how long after a retry its page still shows the
	// feedback (a bookmarked link shows the certificate only).
	retryFeedbackFor = time.Hour
)

// Retry feedback states, the class of each key type's line.
const (
	RetryOrdering = "ordering"  // a scheduler holds the job or its order is in flight
	RetryIssued   = "issued"    // a certificate was issued since
	RetryFailed   = "failed"    // an attempt since failed
	RetryDeferred = "deferred"  // an attempt since was deferred (a rate-limit budget, Retry-After)
	RetryNotDue   = "not-due"   // the scheduler looked and found nothing to order
	RetrySelfTest = "self-test" // names fail their self-test before ordering (issue 14): re-tested, not ordered
	RetryWaiting  = "waiting"   // due, not taken yet
)

// retryLine is what became of one key type's retry.
type retryLine struct {
	KeyType certfleet.KeyType
	State   string
	Text    string
}

// settled reports whether a scheduler has taken the job since at: it holds
// its lease, or an attempt began since, or the job was rescheduled past at.
func settled(j certfleet.Job, atts []certfleet.Attempt, at, now time.Time) bool {
	return (j.LeaseOwner != "" && now.Before(j.LeaseUntil)) || (len(atts) > 0 && !atts[0].StartedAt.Before(at)) || j.NextAt.After(at.Add(time.Second))
}

// awaitPickup waits up to RetryWait for a live scheduler to take every job
// of sp. It does not wait when no scheduler runs: the page says so.
func (s *Server) awaitPickup(ctx context.Context, sp certfleet.CertificateSpec, at time.Time) {
	if lv := s.liveness(ctx, s.Now()); lv.Latest == nil || lv.Stale {
		return
	}
	deadline := time.Now().Add(s.RetryWait)
	for time.Now().Before(deadline) {
		jobs, err := s.Store.Jobs(ctx, certfleet.JobFilter{Spec: sp.Name})
		if err != nil {
			return
		}
		all := len(jobs) > 0
		for _, j := range jobs {
			atts, err := s.Store.Attempts(ctx, j.JobKey, 1)
			if err != nil {
				return
			}
			all = all && settled(j, atts, at, s.Now())
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryPoll):
		}
	}
}

// retryFeedback says per key type of v what happened since the retry at
// at. v's keys carry their jobs' state and newest attempts.
func (s *Server) retryFeedback(ctx context.Context, now, at time.Time, v *certView, jobs map[certfleet.JobKey]certfleet.Job) []retryLine {
	live := s.liveness(ctx, now)
	var out []retryLine
	for _, kv := range v.Keys {
		j := jobs[certfleet.JobKey{Spec: v.Spec.Name, KeyType: kv.KeyType}]
		l := retryLine{KeyType: kv.KeyType}
		var since *certfleet.Attempt
		if len(kv.Attempts) > 0 && !kv.Attempts[0].StartedAt.Before(at) {
			since = &kv.Attempts[0]
		}
		switch {
		case since != nil && since.Outcome == certfleet.OutcomeIssued:
			l.State, l.Text = RetryIssued, "Ordered and issued "+relTime(now, since.FinishedAt)+"."
			if kv.Cert != nil {
				l.Text += " The new certificate (serial " + kv.Cert.Serial + ") is valid until " + kv.Cert.NotAfter.UTC().Format("2006-01-02 15:04 UTC") + "."
			}
		case since != nil && since.Outcome == certfleet.OutcomeFailed:
			l.State, l.Text = RetryFailed, "Ordered, and the order failed: "+since.Error
			if kv.Hint != "" {
				l.Text += " — " + kv.Hint
			}
		case since != nil && since.Outcome == certfleet.OutcomeDeferred:
			why := since.Error
			if kv.Deferred != "" {
				why = kv.Deferred
			}
			l.State, l.Text = RetryDeferred, "Not ordered now: "+why+". It will be ordered "+relTime(now, j.NextAt)+"."
		case j.PendingOrderURL != "" || (j.LeaseOwner != "" && now.Before(j.LeaseUntil)):
			l.State, l.Text = RetryOrdering, "Ordering now"
			if j.LeaseOwner != "" {
				l.Text += " (scheduler " + j.LeaseOwner + " holds it)"
			}
			l.Text += ". Reload to see the result."
		case len(v.Waiting) > 0:
			w := v.Waiting[0]
			l.State = RetrySelfTest
			l.Text = fmt.Sprintf("Not ordered: %d name(s) fail the self-test certfleet runs before ordering (%s: %s). They were re-tested now; "+
				"the order is placed once they pass (next re-test %s). Fix what the reason names.", len(v.Waiting), w.Identifier.Value, w.Reason, relTime(now, w.NextAt))
		case j.NextAt.After(at.Add(time.Second)):
			l.State = RetryNotDue
			l.Text = "Not ordered: the certificate is valid and not due for renewal"
			if kv.Cert != nil {
				l.Text += " (valid until " + kv.Cert.NotAfter.UTC().Format("2006-01-02 15:04 UTC") + ")"
			}
			l.Text += "; it is renewed " + relTime(now, j.NextAt) + ". Nothing was ordered. To order a new certificate now anyway, use Renew now anyway."
		case live.Latest == nil || live.Stale:
			l.State, l.Text = RetryWaiting, "Due now, but no scheduler is running to order it: it will be ordered when certfleet serve runs again."
		default:
			l.State, l.Text = RetryWaiting, "Due now; the scheduler has been woken but has not taken it yet (it may be busy with other work). Reload to follow it."
		}
		out = append(out, l)
	}
	return out
}

// retriedAt reads the retry time of a certificate page's ?retried= (Unix
// milliseconds), if it is recent.
func retriedAt(v string, now time.Time) (time.Time, bool) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	at := time.UnixMilli(ms)
	if at.After(now.Add(time.Minute)) || now.Sub(at) > retryFeedbackFor {
		return time.Time{}, false
	}
	return at, true
}

// renewer is what a store that can force a renewal has
// (certfleet.JobStore.RenewNow).
type renewer interface {
	RenewNow(ctx context.Context, key certfleet.JobKey) error
}

// retryDue says why a retry of job orders now (certfleet.RetryOf), or ""
// when its certificate is valid and not due. An issuance that cannot be
// read counts as due: the scheduler then decides.
func (s *Server) retryDue(ctx context.Context, sp certfleet.CertificateSpec, job certfleet.Job, now time.Time) string {
	var cur *certfleet.Issuance
	if job.CurrentID != 0 {
		iss, err := s.Store.Issuance(ctx, job.CurrentID)
		if err != nil {
			return "its certificate could not be read"
		}
		cur = &iss
	}
	return certfleet.RetryOf(sp, job, cur, now).Due
}

// retester is what a store that keeps waiting names has
// (certfleet.ReadinessStore): a retry re-tests them at once, as the API's.
type retester interface {
	RetestNow(ctx context.Context, spec string) (int, error)
}
