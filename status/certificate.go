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

// Certificate prints one certificate in detail (certfleet status NAME):
// name is a certificate's name or one of its identifiers, found by index
// (certfleet.NameIndex), never by reading every certificate. It shows the
// spec, then each key type's current certificate, schedule, state and
// latest attempts. ENOTFOUND when nothing has that name.
func Certificate(ctx context.Context, w io.Writer, store certfleet.Store, name string, now time.Time) error {
	sp, err := findSpec(ctx, store, name)
	if err != nil {
		return err
	}
	page, err := store.CertificatePage(ctx, certfleet.CertificateQuery{After: before(sp.Name), Limit: 1, IncludeDisabled: true, Chains: true})
	if err != nil {
		return fmt.Errorf("read certificate %s: %w", sp.Name, err)
	}
	if len(page.Certificates) == 0 || page.Certificates[0].Spec.Name != sp.Name {
		return certfleet.Errorf(certfleet.ENOTFOUND, "certificate %q not found", sp.Name)
	}
	c := page.Certificates[0]
	state := "active"
	if sp.Disabled {
		state = "withdrawn"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Certificate:\t%s (%s, source %s)\n", sp.Name, state, sp.Source)
	if sp.Tenant != "" {
		fmt.Fprintf(tw, "Tenant:\t%s\n", sp.Tenant)
	}
	fmt.Fprintf(tw, "Identifiers:\t%s\n", strings.Join(certfleet.IdentifierValues(sp.Identifiers), ", "))
	fmt.Fprintf(tw, "Challenge:\t%s\n", sp.Challenge)
	fmt.Fprintf(tw, "Account:\t%s\n", sp.AccountName())
	if sp.Profile != "" {
		fmt.Fprintf(tw, "Profile:\t%s\n", sp.Profile)
	}
	if len(sp.CSR) > 0 {
		fmt.Fprintf(tw, "Mode:\tCSR (the host keeps the key)\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	waitList, err := store.BudgetWaits(ctx, certfleet.BudgetWaitFilter{Spec: sp.Name})
	if err != nil {
		return fmt.Errorf("rate-limit queue of %s: %w", sp.Name, err)
	}
	waits := make(map[certfleet.JobKey]certfleet.BudgetWait, len(waitList))
	for _, bw := range waitList {
		waits[bw.Job] = bw
	}
	for _, j := range c.Jobs {
		fmt.Fprintf(w, "\n%s:\n", j.KeyType)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if j.Current.IssuanceID != 0 {
			cur := "current"
			if j.CurrentRevision != j.TargetRevision {
				cur = "of an older revision of the spec: a new one is due"
			}
			fmt.Fprintf(tw, "  Serial:\t%s (%s)\n", certfleet.FormatSerial(j.Current.Serial), cur)
			fmt.Fprintf(tw, "  Key ID:\t%s\n", shortKeyID(certfleet.Issuance{ChainPEM: j.ChainPEM}))
			fmt.Fprintf(tw, "  Valid:\t%s to %s\n", Time(j.Current.NotBefore), Time(j.Current.NotAfter))
			fmt.Fprintf(tw, "  Renewal:\t%s\n", plannedRenewal(sp, j, now))
		} else {
			fmt.Fprintf(tw, "  Certificate:\tnone yet\n")
		}
		fmt.Fprintf(tw, "  Next check:\t%s\n", Time(j.NextAt))
		if j.Pending {
			fmt.Fprintf(tw, "  Order:\tin flight\n")
		}
		if j.Failures > 0 {
			fmt.Fprintf(tw, "  Failures:\t%d, last at %s: %s\n", j.Failures, Time(j.LastErrorAt), OneLine(j.LastError, 300))
		}
		atts, err := store.Attempts(ctx, j.Key(sp.Name), 5)
		if err != nil {
			return fmt.Errorf("attempts of %s: %w", j.Key(sp.Name), err)
		}
		var newest *certfleet.Attempt
		if len(atts) > 0 {
			newest = &atts[0]
		}
		if why := deferral(sp, j, waits, newest, now); why != "" {
			fmt.Fprintf(tw, "  Deferred:\t%s\n", OneLine(why, 300))
		}
		if j.Disabled {
			fmt.Fprintf(tw, "  State:\twithdrawn\n")
		}
		for i, a := range atts {
			label := ""
			if i == 0 {
				label = "  Attempts:"
			}
			line := Time(a.StartedAt) + " " + a.Outcome
			if a.Error != "" {
				line += ": " + OneLine(a.Error, 200)
			}
			fmt.Fprintf(tw, "%s\t%s\n", label, line)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// findSpec finds the certificate called name, or the one serving the
// identifier name (the certificate made for that name alone first, then
// the one with the fewest names).
func findSpec(ctx context.Context, store certfleet.Store, name string) (certfleet.CertificateSpec, error) {
	specs, err := store.SpecsByName(ctx, strings.ToLower(name))
	if err != nil {
		return certfleet.CertificateSpec{}, fmt.Errorf("look up %s: %w", name, err)
	}
	if len(specs) > 0 {
		best := specs[0]
		for _, sp := range specs[1:] {
			if len(sp.Identifiers) < len(best.Identifiers) {
				best = sp
			}
		}
		return best, nil
	}
	sp, err := store.Spec(ctx, name)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
		return sp, certfleet.Errorf(certfleet.ENOTFOUND, "no certificate is called %q or holds it: see certfleet status for the list", name)
	}
	return sp, err
}

// before is the greatest name that sorts before name (a cursor that
// makes name the first of the page).
func before(name string) string {
	if name == "" {
		return ""
	}
	b := []byte(name)
	if b[len(b)-1] == 0 {
		return string(b[:len(b)-1])
	}
	b[len(b)-1]--
	return string(b) + "\x7f" // above every name character
}
