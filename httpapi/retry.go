package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

func (s *Server) retry(w http.ResponseWriter, r *http.Request, p principal) {
	ctx := r.Context()
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	sp := s.managedSpec(w, r, p, id.Value, "retry")
	if sp == nil {
		return
	}
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "force=%q: use true or false", v))
			return
		}
		force = b
	}
	acts, prob, err := s.retryJobs(ctx, sp, force)
	if err != nil {
		s.internal(w, r, "retry", err)
		return
	}
	var said []string
	for _, a := range acts {
		said = append(said, string(a.KeyType)+": "+a.Reason)
	}
	if prob != nil {
		// Nothing to order: say so, and how to renew anyway, rather
		// than a 202 that does nothing (issue 15, finding 6).
		s.emit(r, p, certfleet.Event{Kind: certfleet.EventRetry, Certificate: sp.Name,
			Detail: "POST " + id.Value + "/retry: not due, nothing ordered (" + strings.Join(said, "; ") + ")"})
		prob.Detail = fmt.Sprintf("nothing to retry: %s (certificate %s) is valid and not due for renewal (%s); nothing was ordered. "+
			"To renew now anyway, POST %s?force=true", id.Value, sp.Name, strings.Join(said, "; "), r.URL.Path)
		s.fail(w, r, false, prob)
		return
	}
	verb := "ordering now"
	if force {
		verb = "renewal forced, ordering now"
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventRetry, Certificate: sp.Name, Detail: "POST " + id.Value + "/retry: " + verb + " (" + strings.Join(said, "; ") + ")"})
	if s.Wake != nil {
		s.Wake()
	}
	st, err := s.nameStatus(ctx, id.Value, sp.Name)
	if err != nil {
		s.internal(w, r, "status", err)
		return
	}
	st.Retry = acts
	rep := jsonReply(http.StatusAccepted, st)
	rep.header = http.Header{"Location": {st.StatusURL}}
	writeReply(w, r, rep)
}

// Retry actions (RetryAction.Action).
const (
	RetryOrdering = "ordering" // due: the scheduler orders at once
	RetryForced   = "forced"   // not due, renewed anyway (force=true)
	RetryRetest   = "retest"   // names wait for their self-test: re-tested now
	RetryNotDue   = "not_due"  // valid and not due: nothing ordered
)

// retryJobs does what a retry of sp does to each of its jobs (issue 15,
// finding 6): one that is due (certfleet.RetryOf) is made due now; with
// force every one is renewed (JobStore.RenewNow); while names wait for
// their self-test they are re-tested; otherwise nothing is done, and the
// answer says why. prob is set when nothing at all is done.
func (s *Server) retryJobs(ctx context.Context, sp *certfleet.CertificateSpec, force bool) ([]RetryAction, *Problem, error) {
	waiting, err := s.Store.WaitingNames(ctx, certfleet.WaitingFilter{Spec: sp.Name})
	if err != nil {
		return nil, nil, err
	}
	now := s.Now()
	var acts []RetryAction
	acted := false
	for _, k := range sp.JobKeys() {
		job, err := s.Store.Job(ctx, k)
		if err != nil {
			return nil, nil, err
		}
		var cur *certfleet.Issuance
		if job.CurrentID != 0 {
			if cur, err = s.issuance(ctx, job.CurrentID); err != nil {
				return nil, nil, err
			}
		}
		rt := certfleet.RetryOf(*sp, job, cur, now)
		a := RetryAction{KeyType: k.KeyType, ValidUntil: rt.ValidUntil, RenewalAt: rt.RenewalAt}
		switch {
		case force:
			a.Action, a.Reason = RetryForced, "renewal forced (force=true): a new certificate is ordered now"
			err = s.Store.RenewNow(ctx, k)
		case rt.Due != "":
			a.Action, a.Reason = RetryOrdering, rt.Due+": ordered now"
			err = s.Store.RetryNow(ctx, k)
		case len(waiting) > 0:
			a.Action = RetryRetest
			a.Reason = fmt.Sprintf("%d name(s) wait for their self-test (%s: %s): re-tested now, ordered once they pass",
				len(waiting), waiting[0].Identifier.Value, waiting[0].Reason)
			err = s.Store.RetryNow(ctx, k) // re-tests the waiting names (JobStore.RetryNow)
		default:
			a.Action = RetryNotDue
			a.Reason = fmt.Sprintf("valid until %s, renewal due at %s", rt.ValidUntil.UTC().Format(time.RFC3339), rt.RenewalAt.UTC().Format(time.RFC3339))
		}
		if err != nil {
			return nil, nil, err
		}
		acted = acted || a.Action != RetryNotDue
		acts = append(acts, a)
	}
	if !acted {
		return acts, problemf(certfleet.ECONFLICT, "not due"), nil
	}
	return acts, nil, nil
}
