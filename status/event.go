package status

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/certfleet/certfleet"
)

// Events prints audit events as a table, one line each.
func Events(w io.Writer, evs []certfleet.Event) error {
	evs = ShownEvents(evs)
	if len(evs) == 0 {
		_, err := fmt.Fprintln(w, "(no events match)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tKIND\tCERTIFICATE\tKEY\tACTOR\tFROM\tDETAIL")
	for _, e := range evs {
		var detail []string
		if e.Reason != "" {
			detail = append(detail, "["+e.Reason+"]")
		}
		if e.Serial != "" {
			detail = append(detail, "serial "+e.Serial)
		}
		if e.Detail != "" {
			detail = append(detail, e.Detail)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, Time(e.At), e.Kind, dash(e.Certificate), dash(string(e.KeyType)),
			e.Actor, dash(e.Remote), dash(OneLine(strings.Join(detail, " "), 160)))
	}
	return tw.Flush()
}

// ShownEvents returns evs as they are shown (the table, certfleet audit
// --json): serials as openssl prints them (certfleet.FormatSerial; the
// store keeps its own form). evs is not changed.
func ShownEvents(evs []certfleet.Event) []certfleet.Event {
	out := slices.Clone(evs)
	for i := range out {
		out[i].Serial = certfleet.FormatSerial(out[i].Serial)
	}
	return out
}
