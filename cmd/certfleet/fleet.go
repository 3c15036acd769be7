package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet"
)

// printFleet prints, after the status table, the agents' copies of each
// certificate: which version each agent has (CURRENT or OLD), when it
// installed it, when it last checked in, and its last error. Nothing is
// printed when no agent ever reported (or the store keeps no reports).
func printFleet(ctx context.Context, w io.Writer, store certfleet.Store, now time.Time) error {
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
		serial, lastErr := r.Serial, "-"
		if serial == "" {
			serial = "-"
		}
		if r.Error != "" {
			lastErr = oneLine(r.Error, 100)
		}
		seen := fmtTime(r.ReportedAt) + " (" + now.Sub(r.ReportedAt).Round(time.Second).String() + " ago)"
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Certificate, r.KeyType, r.Agent, serial, version, fmtTime(r.InstalledAt), seen, lastErr)
	}
	return tw.Flush()
}
