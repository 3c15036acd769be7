package status

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/endpoint"
)

// Fleet prints, after the status table, the agents' copies of each
// certificate: which version each agent has (CURRENT or OLD), when it
// installed it, when it last checked in, and its last error. Nothing is
// printed when no agent ever reported (or the store keeps no reports).
func Fleet(ctx context.Context, w io.Writer, store certfleet.Store, now time.Time) error {
	fs, ok := store.(certfleet.FleetStore)
	if !ok {
		return nil
	}
	reps, err := fs.AgentReports(ctx, certfleet.AgentReportFilter{})
	if err != nil {
		return fmt.Errorf("list agent reports: %w", err)
	}
	if len(reps) == 0 {
		return nil
	}
	current := map[certfleet.JobKey]string{}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tKEY\tAGENT\tSERIAL\tVERSION\tINSTALLED\tLAST SEEN\tERROR")
	for _, r := range reps {
		k := certfleet.JobKey{Spec: r.Certificate, KeyType: r.KeyType}
		fp, ok := current[k]
		if !ok {
			if j, err := store.Job(ctx, k); err == nil && j.CurrentID != 0 {
				if iss, err := store.Issuance(ctx, j.CurrentID); err == nil {
					fp = iss.Fingerprint
				}
			}
			current[k] = fp
		}
		version := "OLD"
		switch {
		case r.Fingerprint == "":
			version = "none"
		case r.Fingerprint == fp:
			version = "current"
		}
		serial, lastErr := certfleet.FormatSerial(r.Serial), "-"
		if serial == "" {
			serial = "-"
		}
		if r.Error != "" {
			lastErr = OneLine(r.Error, 100)
		}
		seen := Time(r.ReportedAt) + " (" + now.Sub(r.ReportedAt).Round(time.Second).String() + " ago)"
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Certificate, r.KeyType, r.Agent, serial, version, Time(r.InstalledAt), seen, lastErr)
	}
	return tw.Flush()
}

// Endpoints prints the endpoint checks as a table and returns how many
// are not OK.
func Endpoints(w io.Writer, results []endpoint.Finding) int {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Certificate, r.Target, status, OneLine(r.Summary(), 140))
	}
	tw.Flush()
	return bad
}

// Readiness prints the short-lived readiness warnings (daemon.Readiness
// finds them); nothing when there are none.
func Readiness(w io.Writer, vs []certfleet.ReadinessViolation) {
	if len(vs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nREADINESS: %d step(s) take more than 1/%d of their certificate's lifetime (unsafe for short-lived certificates):\n", len(vs), certfleet.ReadinessFraction)
	for _, v := range vs {
		fmt.Fprintf(w, "  WARNING %s\n", v.String())
	}
}

// Incidents prints the open alert incidents after the status table;
// nothing when there are none.
func Incidents(ctx context.Context, w io.Writer, store certfleet.Store, now time.Time) error {
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
			notified = fmt.Sprintf("FAILING (%d): %s", i.DeliveryAttempts, OneLine(i.DeliveryError, 60))
		case i.NotifiedSeverity != "":
			notified = string(i.NotifiedSeverity)
		}
		fmt.Fprintf(tw, "%d %s\t%s\t%s\t%s\t%s (%s ago)\t%s\t%s\n", i.ID, i.Kind, strings.ToUpper(string(i.Severity)), i.Certificate,
			subject, Time(i.OpenedAt), now.Sub(i.OpenedAt).Round(time.Second), notified, OneLine(i.Summary, 120))
	}
	return tw.Flush()
}
