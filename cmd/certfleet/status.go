package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
)

// printEndpoints prints the endpoint checks as a table and returns how many
// are not OK.
func printEndpoints(w io.Writer, results []daemon.EndpointResult) int {
	if len(results) == 0 {
		fmt.Fprintln(w, "(no endpoints configured: add endpoints = [...] to a [[certificate]])")
		return 0
	}
	bad := 0
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENDPOINT\tSTATUS\tDETAIL")
	for _, r := range results {
		status := string(r.Verdict.Status)
		if r.Err != nil {
			status = "error"
		}
		if !r.OK() {
			bad++
			status = upper(status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Certificate, r.Target, status, oneLine(r.Summary(), 140))
	}
	tw.Flush()
	return bad
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

// printReadiness prints the short-lived readiness warnings `status` finds
// in the store (agents' check-ins and deploys) and in the endpoint results
// it checked now, if any. Nothing is printed when all is well.
func printReadiness(ctx context.Context, w io.Writer, store certfleet.Store, cfg *config.Config, now time.Time, results []daemon.EndpointResult) error {
	vs, err := daemon.Readiness(ctx, store, cfg, now, results)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nREADINESS: %d step(s) take more than 1/%d of their certificate's lifetime (unsafe for short-lived certificates):\n", len(vs), certfleet.ReadinessFraction)
	for _, v := range vs {
		fmt.Fprintf(w, "  WARNING %s\n", v.String())
	}
	return nil
}

// printIncidents prints the open alert incidents after the status table;
// nothing when there are none.
func printIncidents(ctx context.Context, w io.Writer, store certfleet.Store, now time.Time) error {
	open, err := store.Incidents(ctx, certfleet.IncidentFilter{OpenOnly: true, Limit: 1000})
	if err != nil {
		return fmt.Errorf("list alert incidents: %w", err)
	}
	if len(open) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tSEVERITY\tCERTIFICATE\tSUBJECT\tOPENED\tNOTIFIED\tSUMMARY")
	for _, i := range open {
		subject := i.Subject
		if subject == "" {
			subject = string(i.KeyType)
		}
		notified := "no"
		switch {
		case i.DeliveryAttempts > 0:
			notified = fmt.Sprintf("FAILING (%d): %s", i.DeliveryAttempts, oneLine(i.DeliveryError, 60))
		case i.NotifiedSeverity != "":
			notified = string(i.NotifiedSeverity)
		}
		fmt.Fprintf(tw, "%d %s\t%s\t%s\t%s\t%s (%s ago)\t%s\t%s\n", i.ID, i.Kind, strings.ToUpper(string(i.Severity)), i.Certificate,
			subject, fmtTime(i.OpenedAt), now.Sub(i.OpenedAt).Round(time.Second), notified, oneLine(i.Summary, 120))
	}
	return tw.Flush()
}

// deferral returns the reason a job is waiting for a rate-limit budget, if
// its latest attempt was deferred and the deferral still holds.
func deferral(ctx context.Context, store certfleet.Store, j certfleet.Job, now time.Time) (string, error) {
	if !j.NextAt.After(now) || j.Disabled {
		return "", nil
	}
	atts, err := store.Attempts(ctx, j.JobKey, 1)
	if err != nil {
		return "", fmt.Errorf("attempts of %s: %w", j.JobKey, err)
	}
	if len(atts) == 0 || atts[0].Outcome != certfleet.OutcomeDeferred {
		return "", nil
	}
	return atts[0].Error, nil
}

// printRateHolds lists the accounts a CA asked to wait (rateLimited), if
// any.
func printRateHolds(ctx context.Context, w io.Writer, store certfleet.RateLimitStore, now time.Time) error {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Account, h.CA, fmtTime(h.Until), fmtTime(h.SetAt), oneLine(strings.TrimSpace(h.Reason), 120))
	}
	return tw.Flush()
}
