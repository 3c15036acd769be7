package status

import (
	"fmt"
	"io"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/manager"
)

// Pass prints a scheduler pass as certfleet issue does: one line per
// lineage worked on, then a summary.
func Pass(w io.Writer, rep manager.Report) {
	for _, r := range rep.Results {
		switch r.Outcome {
		case certfleet.OutcomeIssued:
			line := fmt.Sprintf("issued   %-24s %-10s serial %s, valid until %s", r.Key.Spec, r.Key.KeyType, certfleet.FormatSerial(r.Issuance.Serial), r.Issuance.NotAfter.UTC().Format(time.RFC3339))
			if r.Err != nil {
				line += fmt.Sprintf("; NOT WRITTEN: %v", r.Err)
			}
			fmt.Fprintln(w, line)
		case certfleet.OutcomeFailed:
			fmt.Fprintf(w, "FAILED   %-24s %-10s %s (next try %s)\n", r.Key.Spec, r.Key.KeyType, Cause(r.Err.Error(), certfleet.ProblemType(r.Err)), Time(r.NextAt))
		case certfleet.OutcomeDeferred:
			if de, ok := certfleet.AsDeferError(r.Err); ok { // a rate-limit budget: see docs/ratelimits.md
				fmt.Fprintf(w, "DEFERRED %-24s %-10s until %s: %s\n", r.Key.Spec, r.Key.KeyType, Time(r.NextAt), de.Reason)
				continue
			}
			fmt.Fprintf(w, "ok       %-24s %-10s not due until %s\n", r.Key.Spec, r.Key.KeyType, Time(r.NextAt))
		}
	}
	outstanding(w, rep)
	for _, n := range rep.Waiting {
		fmt.Fprintf(w, "WAITING  %-24s %-10s %s: %s (no order placed; next self-test %s)\n",
			n.Spec, n.Identifier.Value, n.Code, OneLine(n.Reason, 300), Time(n.NextAt))
	}
	took := rep.Finished.Sub(rep.Started).Round(time.Millisecond)
	if len(rep.Results) == 0 {
		if len(rep.Outstanding) > 0 {
			fmt.Fprintf(w, "nothing due now, but %d certificate(s) still failing or not written (above)\n", len(rep.Outstanding))
			return
		}
		fmt.Fprintln(w, "nothing due now: every certificate is issued and written (certfleet status shows each one's next check)")
		return
	}
	budget := 0
	for _, r := range rep.Results {
		if _, ok := certfleet.AsDeferError(r.Err); ok && r.Outcome == certfleet.OutcomeDeferred {
			budget++
		}
	}
	if budget > 0 {
		fmt.Fprintf(w, "%d issued, %d failed, %d deferred by rate-limit budgets, %d not due, in %s\n",
			rep.Issued, rep.Failed, budget, rep.Deferred-budget, took)
		return
	}
	fmt.Fprintf(w, "%d issued, %d failed, %d not due, in %s\n", rep.Issued, rep.Failed, rep.Deferred, took)
}

// PassFailure is the error a one-shot pass (certfleet issue) exits with:
// nil when every certificate was issued or written and the rounds after
// the pass (alerts, events) went well (roundsErr nil); else what failed,
// pointing at certfleet status for the config file file.
func PassFailure(rep manager.Report, file string, roundsErr error) error {
	if rep.OK() {
		return roundsErr
	}
	failed, notWritten := rep.Failed, rep.DeployFailed
	if len(rep.Outstanding) > 0 { // the store's view, this pass included
		f, nw := 0, 0
		for _, j := range rep.Outstanding {
			if j.Failures > 0 {
				f++
			}
			if j.Deploy.NotWritten() {
				nw++
			}
		}
		failed, notWritten = max(failed, f), max(notWritten, nw)
	}
	err := fmt.Errorf("%d certificate(s) failing, %d issued but not written; see above and `certfleet status -config %s`", failed, notWritten, file)
	if len(rep.Waiting) > 0 {
		err = fmt.Errorf("%d certificate(s) failing, %d issued but not written, %d name(s) waiting for their self-test; see above and `certfleet status -config %s`",
			failed, notWritten, len(rep.Waiting), file)
	}
	if roundsErr != nil {
		err = fmt.Errorf("%w; also, %v", err, roundsErr)
	}
	return err
}

// Alerts prints the line certfleet issue prints about the alert round
// after its pass; nothing when the round did nothing.
func Alerts(w io.Writer, rep alert.Report) {
	if rep.Opened+rep.Resolved+rep.Sent+rep.Failed > 0 {
		fmt.Fprintf(w, "alerts: %d opened, %d changed, %d resolved; %d notification(s) sent, %d failed\n",
			rep.Opened, rep.Updated, rep.Resolved, rep.Sent, rep.Failed)
	}
}

// outstanding prints the certificates in trouble that the pass did not
// work on (waiting for their next try): a failing certificate is reported
// on every pass until it heals, not only on the pass that tried it.
func outstanding(w io.Writer, rep manager.Report) {
	tried := make(map[certfleet.JobKey]bool, len(rep.Results))
	for _, r := range rep.Results {
		tried[r.Key] = true
	}
	for _, j := range rep.Outstanding {
		if tried[j.JobKey] {
			continue
		}
		if j.Failures > 0 {
			fmt.Fprintf(w, "FAILING  %-24s %-10s %s (failed %d time(s); next try %s, not in this pass)\n",
				j.Spec, j.KeyType, Cause(j.LastError, rep.Problems[j.JobKey]), j.Failures, Time(j.NextAt))
		}
		if j.Deploy.NotWritten() {
			fmt.Fprintf(w, "NOT WRITTEN %-21s %-10s issued, files not written: %s (next try %s)\n",
				j.Spec, j.KeyType, OneLine(j.Deploy.Error, 300), Time(j.Deploy.NextAt))
		}
	}
}
