package status

import (
	"regexp"
	"strings"
)

// Cause formats a renewal failure for a table line, cause first (issue 15):
// the ACME problem type (when the CA sent one), the message without the
// order and authorization URLs that wrap it, and what to do about it. The
// URLs are not lost: certfleet status NAME (Detail) prints the message in
// full with the order URL of each attempt.
func Cause(msg, problemType string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	for {
		loc := wrapper.FindStringIndex(msg)
		if loc == nil || loc[0] != 0 {
			break
		}
		msg = msg[loc[1]:]
	}
	kind := ProblemKind(problemType)
	if kind == "" {
		if m := inlineProblem.FindStringSubmatch(msg); m != nil {
			kind = m[1]
		}
	}
	out := msg
	if kind != "" {
		out = "[" + kind + "] " + msg
	}
	if hint := problemHints[kind]; hint != "" && !strings.Contains(msg, hint) {
		out += " — " + hint
	}
	return out
}

// ProblemKind is the short name of an ACME problem type
// ("urn:ietf:params:acme:error:dns" is "dns"); "" for none.
func ProblemKind(problemType string) string {
	return strings.TrimPrefix(problemType, "urn:ietf:params:acme:error:")
}

// wrapper matches one layer of context the issuer puts before the cause:
// the order or authorization URL the failure happened in.
var wrapper = regexp.MustCompile(`^(?:(?:resume )?order https?://\S+?(?: is invalid)?|authorization https?://\S+|poll): `)

// inlineProblem finds an ACME problem type in a message that embeds the
// CA's problem document (acmez's "HTTP 403 urn:...:unauthorized - ...").
var inlineProblem = regexp.MustCompile(`urn:ietf:params:acme:error:([A-Za-z]+)`)

// problemHints says what to do for the ACME problem types an operator
// can act on (RFC 8555 §6.7 and the validation methods of §8).
var problemHints = map[string]string{
	"unauthorized":            "the CA could not verify control of the name: check the challenge reaches this host (certfleet check)",
	"connection":              "the CA could not connect: check DNS points at this host and port 80/443 is open to the internet (certfleet check)",
	"dns":                     "the CA's DNS lookup failed: check the name's records and the dns-01 provider (certfleet check)",
	"tls":                     "the CA's TLS connection failed: check port 443 reaches the tls-alpn-01 responder",
	"caa":                     "a CAA record forbids this CA: add one for it or remove the restriction (certfleet check)",
	"incorrectResponse":       "the CA saw another answer: check no other server answers the challenge for this name",
	"rateLimited":             "the CA is rate limiting: certfleet waits for its Retry-After; see docs/ratelimits.md",
	"rejectedIdentifier":      "the CA will not issue for this name: remove it or use another CA",
	"unsupportedIdentifier":   "the CA does not issue for this kind of identifier",
	"badCSR":                  "the CA refused the request: check key_type and the names",
	"externalAccountRequired": "the CA needs external account binding: set eab_key_id and eab_hmac_key in [ca]",
	"accountDoesNotExist":     "the ACME account is gone at the CA: register a new one (certfleet account register; docs/accounts.md)",
	"userActionRequired":      "the CA needs something done by a person: see its detail and the terms of service",
	"serverInternal":          "the CA had an internal error: certfleet retries on its backoff",
}
