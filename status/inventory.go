package status

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/inventory"
)

// InventoryPlan prints what syncing inventory source name would do
// (certfleet inventory diff): one line per certificate it would add (+),
// change (~, with what changes), withdraw (-), keep pending its grace (…)
// or keep as stored for an invalid entry (=), one per entry it would skip
// (!), then a summary.
func InventoryPlan(w io.Writer, name string, p inventory.Plan) {
	fmt.Fprintf(w, "inventory %s (spec source %s, grace %s):\n", name, p.Source, duration(p.Grace))
	for _, c := range p.Add {
		sp := c.Spec
		fmt.Fprintf(w, "  + %s  %s  (%s, %s)\n", sp.Name, identifiers(sp), keyTypes(sp), sp.Challenge)
	}
	for _, c := range p.Change {
		fmt.Fprintf(w, "  ~ %s  %s\n", c.New.Name, strings.Join(specDiff(c.Old, c.New), "; "))
	}
	for _, n := range p.Withdraw {
		fmt.Fprintf(w, "  - %s  withdrawn: no longer declared for the grace of %s (its archive stays; nothing is revoked)\n", n, duration(p.Grace))
	}
	for _, n := range slices.Sorted(maps.Keys(p.Pending)) {
		since := p.Pending[n]
		fmt.Fprintf(w, "  … %s  no longer declared since %s: withdrawn at %s unless it comes back\n",
			n, since.UTC().Format(time.RFC3339), since.Add(p.Grace).UTC().Format(time.RFC3339))
	}
	for _, n := range p.Held {
		fmt.Fprintf(w, "  = %s  its entry is invalid (below): kept as stored until it is fixed\n", n)
	}
	for _, pr := range p.Problems {
		fmt.Fprintf(w, "  ! %s\n", pr)
	}
	fmt.Fprintf(w, "  %d to add, %d to change, %d to withdraw, %d pending withdrawal, %d held, %d entries skipped, %d unchanged\n",
		len(p.Add), len(p.Change), len(p.Withdraw), len(p.Pending), len(p.Held), len(p.Problems), p.Unchanged)
}

func keyTypes(sp certfleet.CertificateSpec) string {
	kts := make([]string, len(sp.KeyTypes))
	for i, kt := range sp.KeyTypes {
		kts[i] = string(kt)
	}
	return strings.Join(kts, "+")
}

func identifiers(sp certfleet.CertificateSpec) string {
	ids := make([]string, len(sp.Identifiers))
	for i, id := range sp.Identifiers {
		ids[i] = id.Value
	}
	return strings.Join(ids, " ")
}

// specDiff lists what differs between two specs of one certificate.
func specDiff(a, b certfleet.CertificateSpec) []string {
	var out []string
	field := func(name, x, y string) {
		if x != y {
			out = append(out, fmt.Sprintf("%s: %s → %s", name, orNone(x), orNone(y)))
		}
	}
	field("identifiers", identifiers(a), identifiers(b))
	field("key_types", keyTypes(a), keyTypes(b))
	field("challenge", string(a.Challenge), string(b.Challenge))
	field("profile", a.Profile, b.Profile)
	field("account", a.AccountName(), b.AccountName())
	field("renew_before", a.RenewBefore.String(), b.RenewBefore.String())
	field("renew_after", a.RenewAfter.String(), b.RenewAfter.String())
	field("reuse_key", fmt.Sprint(a.ReuseKey), fmt.Sprint(b.ReuseKey))
	if len(out) == 0 {
		out = append(out, "settings that do not change the certificate")
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// duration renders d without its zero minutes and seconds ("24h", not
// "24h0m0s").
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
