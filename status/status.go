// Package status renders certfleet's state as plain text for people: the
// tables certfleet status prints (certificates, agents, short-lived
// readiness, alert incidents, CA rate-limit holds, endpoint checks), a
// scheduler pass as certfleet issue prints it, the audit trail and the ACME
// accounts.
//
// It reads through the root interfaces and writes to an io.Writer; it
// changes nothing and decides nothing (what is due, failing or unsafe is
// decided by manager, alert and metrics, and computed for status by
// daemon). Machine-readable views are the HTTP API's (httpapi) and
// /metrics' (metrics).
package status

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet"
)

// statusPage is how many certificates Certificates reads and prints at a
// time: the table streams, its first lines come after one page whatever
// the number of certificates, and it holds one page in memory.
const statusPage = 500

// Certificates prints the status table of every lineage (withdrawn ones
// too with all): key ID, names, expiry, planned renewal, next check,
// state and last error, then the CA rate-limit holds in force. It reads
// the store a page at a time (certfleet.NameIndex.CertificatePage, and
// the newest attempts of a page's failing and waiting jobs in one read,
// newestAttempts) and prints each page as it comes, so columns are
// aligned within a page.
//
// RENEWAL is when the current certificate is renewed
// (certfleet.PlannedRenewal, the scheduler's own rule, with the CA's ARI
// window as last seen; without the order duration the scheduler
// observes, so it may read up to that much later than the scheduler's);
// NEXT CHECK is when the scheduler next looks at
// the job, which is earlier when it asks the CA's ARI in between, and is
// the retry time after a failure.
func Certificates(ctx context.Context, w io.Writer, store certfleet.Store, all bool, now time.Time) error {
	// The jobs waiting for a rate-limit budget, with their places now.
	waitList, err := store.BudgetWaits(ctx, certfleet.BudgetWaitFilter{})
	if err != nil {
		return fmt.Errorf("list jobs waiting for a rate-limit budget: %w", err)
	}
	waits := make(map[certfleet.JobKey]certfleet.BudgetWait, len(waitList))
	for _, bw := range waitList {
		waits[bw.Job] = bw
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKEY\tKEY ID\tIDENTIFIERS\tNOT AFTER\tRENEWAL\tNEXT CHECK\tSTATE\tLAST ERROR")
	rows := 0
	q := certfleet.CertificateQuery{IncludeDisabled: all, Chains: true, Limit: statusPage}
	for {
		page, err := store.CertificatePage(ctx, q)
		if err != nil {
			return fmt.Errorf("list certificates: %w", err)
		}
		newest, err := newestAttempts(ctx, store, page.Certificates, waits, now)
		if err != nil {
			return err
		}
		for _, c := range page.Certificates {
			for _, j := range c.Jobs {
				fmt.Fprint(tw, jobLine(c.Spec, j, waits, newest, now))
				rows++
			}
		}
		// Each page as it comes: the table streams.
		if err := tw.Flush(); err != nil {
			return err
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rows == 0 {
		fmt.Fprintln(w, "(no certificates in the store)")
	}
	if err := Waiting(ctx, w, store, ""); err != nil {
		return err
	}
	return rateHolds(ctx, w, store, now)
}

// Waiting lists the names waiting for their self-test to pass (issue 14,
// docs/readiness.md), of one tenant ("" for all), if any: their
// certificates are ordered without them until a re-test passes.
func Waiting(ctx context.Context, w io.Writer, store certfleet.ReadinessStore, tenant string) error {
	names, err := store.WaitingNames(ctx, certfleet.WaitingFilter{Tenant: tenant})
	if err != nil {
		return fmt.Errorf("list waiting names: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nNames waiting for their self-test to pass (no order for them until then; a retry from the API or dashboard tests now):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCERTIFICATE\tCHALLENGE\tSINCE\tTESTS\tNEXT TEST\tWHY")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.Identifier.Value, n.Spec, n.Challenge, Time(n.Since), n.Tests, Time(n.NextAt), OneLine(n.Reason, 200))
	}
	return tw.Flush()
}

// jobLine is the table's line of one job; newest holds the newest
// attempt of the jobs whose line shows it (needsAttempt).
func jobLine(sp certfleet.CertificateSpec, j certfleet.ListedJob, waits map[certfleet.JobKey]certfleet.BudgetWait, newest map[certfleet.JobKey]certfleet.Attempt, now time.Time) string {
	notAfter, renewal, state, keyID := "-", "-", "pending", "-"
	if j.Current.IssuanceID != 0 {
		notAfter = Time(j.Current.NotAfter)
		keyID = shortKeyID(certfleet.Issuance{ChainPEM: j.ChainPEM})
		renewal = plannedRenewal(sp, j, now)
		switch left := j.Current.NotAfter.Sub(now); {
		case left <= 0:
			state = "EXPIRED"
		case j.Failures > 0:
			state = fmt.Sprintf("valid, %d failure(s)", j.Failures)
		default:
			state = "valid"
		}
	} else if j.Failures > 0 {
		state = fmt.Sprintf("failing (%d)", j.Failures)
	}
	if j.Disabled {
		state = "withdrawn"
	}
	a, hasAttempt := newest[j.Key(sp.Name)]
	lastErr := "-"
	if j.LastError != "" {
		pt := ""
		if hasAttempt && j.Failures > 0 && a.Outcome == certfleet.OutcomeFailed {
			pt = a.ProblemType // the newest attempt's, if it failed
		}
		lastErr = OneLine(Cause(j.LastError, pt), 160)
	}
	if j.Deploy.NotWritten() && !j.Disabled {
		// Issued but not in place: as much a failure as no issuance.
		state = "issued, NOT WRITTEN"
		lastErr = OneLine("files not written: "+j.Deploy.Error, 140) + "; next try " + Time(j.Deploy.NextAt)
	}
	var newestP *certfleet.Attempt
	if hasAttempt {
		newestP = &a
	}
	if why := deferral(sp, j, waits, newestP, now); why != "" {
		state, lastErr = "deferred ("+state+")", OneLine(why, 160) // rate-limit budget; NEXT CHECK is when
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sp.Name, j.KeyType, keyID, idList(sp.Identifiers), notAfter, renewal, Time(j.NextAt), state, lastErr)
}

// needsAttempt is whether j's line shows something of its newest attempt:
// the problem type of a failing job's, or the deferral of a job that waits
// to order (deferral).
func needsAttempt(sp certfleet.CertificateSpec, j certfleet.ListedJob, waits map[certfleet.JobKey]certfleet.BudgetWait, now time.Time) bool {
	if j.LastError != "" && j.Failures > 0 {
		return true
	}
	if !j.NextAt.After(now) || j.Disabled {
		return false
	}
	if _, ok := waits[j.Key(sp.Name)]; ok {
		return false
	}
	return j.Current.IssuanceID == 0 || j.CurrentRevision != j.TargetRevision
}

// newestAttempts reads the newest attempt of the jobs of list whose line
// shows it (needsAttempt): in one read for the page when the store can
// (certfleet.ListingExtras; issue 13), else one per job.
func newestAttempts(ctx context.Context, store certfleet.Store, list []certfleet.CertificateListing, waits map[certfleet.JobKey]certfleet.BudgetWait, now time.Time) (map[certfleet.JobKey]certfleet.Attempt, error) {
	var keys []certfleet.JobKey
	for _, c := range list {
		for _, j := range c.Jobs {
			if needsAttempt(c.Spec, j, waits, now) {
				keys = append(keys, j.Key(c.Spec.Name))
			}
		}
	}
	out := make(map[certfleet.JobKey]certfleet.Attempt, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if x, ok := store.(certfleet.ListingExtras); ok {
		ex, err := x.PageExtras(ctx, certfleet.PageExtrasQuery{Attempts: keys, AttemptsPer: 1})
		if err != nil {
			return nil, fmt.Errorf("list certificates: %w", err)
		}
		for k, atts := range ex.Attempts {
			if len(atts) > 0 {
				out[k] = atts[0]
			}
		}
		return out, nil
	}
	for _, k := range keys {
		atts, err := store.Attempts(ctx, k, 1)
		if err != nil {
			return nil, fmt.Errorf("attempts of %s: %w", k, err)
		}
		if len(atts) > 0 {
			out[k] = atts[0]
		}
	}
	return out, nil
}

// plannedRenewal is the RENEWAL column: the current certificate's renewal
// time by the scheduler's rule, "now" when it is due (or of an older
// revision of its spec), "-" for a withdrawn one.
func plannedRenewal(spec certfleet.CertificateSpec, j certfleet.ListedJob, now time.Time) string {
	if j.Disabled || spec.Name == "" {
		return "-"
	}
	var w certfleet.RenewalInfo
	if !j.ARIStart.IsZero() && !j.ARIEnd.IsZero() {
		w = certfleet.RenewalInfo{Start: j.ARIStart, End: j.ARIEnd}
	}
	iss := certfleet.Issuance{NotBefore: j.Current.NotBefore, NotAfter: j.Current.NotAfter, Fingerprint: j.Current.Fingerprint}
	at := certfleet.PlannedRenewal(spec, iss, w, now, 0)
	if !at.After(now) || j.CurrentRevision != spec.Revision(j.KeyType) {
		return "now"
	}
	return Time(at)
}

func idList(ids []certfleet.Identifier) string {
	v := certfleet.IdentifierValues(ids)
	if len(v) > 3 {
		return strings.Join(v[:3], ",") + fmt.Sprintf(",+%d", len(v)-3)
	}
	return strings.Join(v, ",")
}

// shortKeyID is the first 16 hex digits of an issuance's key ID, for the
// status table (certfleet compromise takes any unambiguous prefix of 8 or
// more); "-" when the certificate cannot be read.
func shortKeyID(iss certfleet.Issuance) string {
	id, err := iss.KeyID()
	if err != nil {
		return "-"
	}
	return id[:16]
}

// deferral returns the reason a job is waiting for a rate-limit budget, if
// its latest attempt (newest, nil when it has none or it was not read) was
// deferred and the deferral still holds: its place in the budget's queue
// as it is now (waits), or the deferral's own reason (the CA's hold). The
// attempt counts only for a job that waits to order (no certificate of its
// spec's revision yet): a certificate in force whose renewal a CA hold
// defers shows in the holds listed below the table, not on its line.
func deferral(sp certfleet.CertificateSpec, j certfleet.ListedJob, waits map[certfleet.JobKey]certfleet.BudgetWait, newest *certfleet.Attempt, now time.Time) string {
	if !j.NextAt.After(now) || j.Disabled {
		return ""
	}
	if w, ok := waits[j.Key(sp.Name)]; ok {
		return w.String()
	}
	if j.Current.IssuanceID != 0 && j.CurrentRevision == j.TargetRevision {
		return ""
	}
	if newest == nil || newest.Outcome != certfleet.OutcomeDeferred {
		return ""
	}
	return newest.Error
}

// rateHolds lists the accounts a CA asked to wait (rateLimited), if
// any.
func rateHolds(ctx context.Context, w io.Writer, store certfleet.RateLimitStore, now time.Time) error {
	holds, err := store.RateHolds(ctx, now)
	if err != nil {
		return fmt.Errorf("list rate-limit holds: %w", err)
	}
	if len(holds) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nCA rate limits in force (no new orders for these accounts until then):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tCA\tUNTIL\tSINCE\tCA SAID")
	for _, h := range holds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Account, h.CA, Time(h.Until), Time(h.SetAt), OneLine(strings.TrimSpace(h.Reason), 120))
	}
	return tw.Flush()
}

// Time formats t in UTC to the second, "-" when zero.
func Time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// OneLine folds s onto one line and cuts it to n bytes, with an ellipsis.
func OneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
