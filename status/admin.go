package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet"
)

// Tokens prints the API tokens as a table: their grants and dates, never
// their secrets or hashes.
func Tokens(w io.Writer, toks []certfleet.Token) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAMES\tPERMISSIONS\tURL\tCREATED\tREVOKED\tDESCRIPTION")
	for _, t := range toks {
		perms := make([]string, len(t.Permissions))
		for i, p := range t.Permissions {
			perms[i] = string(p)
		}
		revoked := "-"
		if t.Revoked() {
			revoked = t.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", t.ID, strings.Join(t.Names, ","), strings.Join(perms, ","),
			t.URLCredential, t.CreatedAt.UTC().Format(time.RFC3339), revoked, t.Description)
	}
	return tw.Flush()
}

// Secrets prints the stored secrets' names and dates as a table, never
// their values.
func Secrets(w io.Writer, infos []certfleet.SecretInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCREATED\tUPDATED")
	for _, i := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", i.Name, i.CreatedAt.UTC().Format(time.RFC3339), i.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
