package certfleet

import "time"

// Retry is what an operator's retry of one job does (issue 15, finding 6:
// a retry of a healthy certificate answered "due now", placed no order and
// moved the next check hours away, without a word).
type Retry struct {
	// Due is why the scheduler orders at its next look ("no certificate
	// yet", "retrying after failure", ...); "" when it would find nothing
	// to order.
	Due string
	// ValidUntil is the current certificate's expiry, RenewalAt when it
	// is renewed (the renewal window with the ARI window the job knows);
	// both set when Due is "".
	ValidUntil, RenewalAt time.Time
}

// RetryOf works out what a retry of job, whose current issuance is cur
// (nil: none), does at now: whether the scheduler would order (the same
// reasons as its own decision, before the CA's ARI is asked again) or
// why not. It is the scheduler's decision as far as it can be made
// without the CA: a key marked compromised, a new ARI window or a name
// failing its self-test can still change it.
func RetryOf(spec CertificateSpec, job Job, cur *Issuance, now time.Time) Retry {
	switch {
	case cur == nil || job.CurrentID == 0:
		return Retry{Due: "no certificate yet"}
	case job.PendingOrderURL != "":
		return Retry{Due: "resuming the order in flight"}
	case job.CurrentRevision != spec.Revision(job.KeyType):
		return Retry{Due: "the certificate's names or settings changed"}
	case job.Failures > 0:
		return Retry{Due: "retrying after a failure"}
	case !job.RenewRequested.IsZero():
		return Retry{Due: "renewal requested"}
	case !cur.NotAfter.After(now):
		return Retry{Due: "the certificate expired"}
	}
	var w RenewalInfo
	if !job.ARIStart.IsZero() && !job.ARIEnd.IsZero() {
		w = RenewalInfo{Start: job.ARIStart, End: job.ARIEnd}
	}
	at := PlannedRenewal(spec, *cur, w, now, 0) // the order duration is the scheduler's; status uses 0 too
	if !at.After(now) {
		return Retry{Due: "the renewal window is reached"}
	}
	return Retry{ValidUntil: cur.NotAfter, RenewalAt: at}
}
