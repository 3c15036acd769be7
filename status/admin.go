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
	fmt.Fprintln(tw, "ID\tNAMES\tPERMISSIONS\tURL\tCREATED\tREVOKED\tTENANT\tDESCRIPTION")
	for _, t := range toks {
		perms := make([]string, len(t.Permissions))
		for i, p := range t.Permissions {
			perms[i] = string(p)
		}
		revoked := "-"
		if t.Revoked() {
			revoked = t.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\n", t.ID, strings.Join(t.Names, ","), strings.Join(perms, ","),
			t.URLCredential, t.CreatedAt.UTC().Format(time.RFC3339), revoked, dash(t.Tenant), t.Description)
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

// Tenants prints tenants as a table, each with what it uses of its quotas
// (usage[i] is tenants[i]'s); after a deletion (deleted not nil), what went
// with the tenant.
func Tenants(w io.Writer, tenants []certfleet.Tenant, usage []certfleet.TenantUsage, deleted *certfleet.TenantDeletion) error {
	if deleted != nil {
		_, err := fmt.Fprintf(w, "tenant deleted; %d certificate(s) withdrawn, %d token(s) revoked\n", len(deleted.Withdrawn), len(deleted.TokensRevoked))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tNAMES\tACCOUNT\tNAMES USED\tCERTIFICATES\tORDERS/WEEK\tDESCRIPTION")
	limit := func(n int) string {
		if n == 0 {
			return "no limit"
		}
		return fmt.Sprint(n)
	}
	for i, t := range tenants {
		var u certfleet.TenantUsage
		if i < len(usage) {
			u = usage[i]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d of %s\t%d\t%s\t%s\n", t.Name, strings.Join(t.Names, ","), t.AccountName(),
			u.Names, limit(t.MaxNames), u.Certificates, limit(t.OrdersPerWeek), t.Description)
	}
	return tw.Flush()
}
