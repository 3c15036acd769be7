package status

import (
	"strings"

	"github.com/certfleet/certfleet"
)

// Cause formats a renewal failure for a table line, cause first (issue 15):
// the ACME problem type (when the CA sent one), the message without the
// order and authorization URLs that wrap it, and what to do about it. The
// URLs are not lost: certfleet status NAME (Detail) prints the message in
// full with the order URL of each attempt.
func Cause(msg, problemType string) string {
	c := certfleet.ExplainFailure(msg, problemType)
	out := c.Detail
	if kind := ProblemKind(c.ProblemType); kind != "" {
		out = "[" + kind + "] " + c.Detail
	}
	if c.Action != "" && !strings.Contains(c.Detail, c.Action) {
		out += " — " + c.Action
	}
	return out
}

// ProblemKind is the short name of an ACME problem type
// ("urn:ietf:params:acme:error:dns" is "dns"); "" for none.
func ProblemKind(problemType string) string {
	return strings.TrimPrefix(problemType, "urn:ietf:params:acme:error:")
}
