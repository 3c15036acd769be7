package status

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
)

// Accounts prints the table of ACME accounts: the stored ones (their keys
// never shown), then the configured ones not registered yet.
func Accounts(w io.Writer, configured map[string]config.Account, stored []certfleet.Account) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCA\tURL\tSTATUS\tKEY\tCREATED\tKEY CHANGED")
	seen := map[string]bool{}
	for _, a := range stored {
		seen[a.Name+"\x00"+a.CA] = true
		status := a.Status
		if status == "" {
			status = certfleet.AccountValid
		}
		switch {
		case a.Deactivated():
			status += " since " + Time(a.DeactivatedAt)
		case a.PendingKeyPEM != nil:
			status += " (key rollover pending)"
		}
		if c, ok := configured[a.Name]; !ok || c.Directory != a.CA {
			status += " (not in config)"
		}
		kt := "?"
		if k, err := certfleet.ParsePrivateKey(a.KeyPEM); err == nil {
			if t, err := certfleet.KeyTypeOf(k.Public()); err == nil {
				kt = string(t)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.CA, a.URL, status, kt, Time(a.CreatedAt), Time(a.KeyChangedAt))
	}
	var names []string
	for n := range configured {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := configured[n]
		if !seen[n+"\x00"+c.Directory] {
			fmt.Fprintf(tw, "%s\t%s\t-\tnot registered yet\t-\t-\t-\n", n, c.Directory)
		}
	}
	return tw.Flush()
}
