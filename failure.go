package certfleet

import (
	"regexp"
	"strings"
)

// FailureCause is a renewal failure taken apart for people and programs
// (issue 15, finding 3): the cause first, the URL it happened in apart.
type FailureCause struct {
	// ProblemType is the CA's ACME problem type
	// (urn:ietf:params:acme:error:...), "" when it sent none.
	ProblemType string `json:"problem_type,omitempty"`
	// Detail is the message without the order and authorization URLs
	// that wrap it.
	Detail string `json:"detail"`
	// Identifier is the name the failure is about, when the message
	// names one.
	Identifier string `json:"identifier,omitempty"`
	// Action says what to do, for the problem types an operator can act
	// on; "" otherwise.
	Action string `json:"action,omitempty"`
	// URL is the order or authorization URL the failure happened in.
	URL string `json:"url,omitempty"`
}

// ExplainFailure takes apart msg, a failure's message, with problemType
// the CA's problem type if known (found in msg otherwise).
func ExplainFailure(msg, problemType string) FailureCause {
	msg = strings.Join(strings.Fields(msg), " ")
	var c FailureCause
	for {
		loc := failureWrapper.FindStringSubmatchIndex(msg)
		if loc == nil || loc[0] != 0 {
			break
		}
		if c.URL == "" && loc[2] >= 0 {
			c.URL = msg[loc[2]:loc[3]]
		}
		msg = msg[loc[1]:]
	}
	c.Detail = msg
	c.ProblemType = problemType
	if c.ProblemType == "" {
		if m := inlineProblem.FindStringSubmatch(msg); m != nil {
			c.ProblemType = acmeErrorPrefix + m[1]
		}
	}
	if m := failureName.FindStringSubmatch(msg); m != nil {
		c.Identifier = m[1]
	}
	c.Action = problemActions[strings.TrimPrefix(c.ProblemType, acmeErrorPrefix)]
	return c
}

const acmeErrorPrefix = "urn:ietf:params:acme:error:"

// failureWrapper matches one layer of context the issuer puts before the
// cause: the order or authorization URL the failure happened in.
var failureWrapper = regexp.MustCompile(`^(?:(?:resume )?order (https?://\S+?)(?: is invalid)?|authorization (?:https?://\S+)|poll): `)

// inlineProblem finds an ACME problem type in a message that embeds the
// CA's problem document (acmez's "HTTP 403 urn:...:unauthorized - ...").
var inlineProblem = regexp.MustCompile(`urn:ietf:params:acme:error:([A-Za-z]+)`)

// failureName finds the name in the issuer's `authorization for "NAME"`
// and `challenge for "NAME"`.
var failureName = regexp.MustCompile(`(?:authorization|challenge) for "([^"]+)"`)

// problemActions says what to do for the ACME problem types an operator
// can act on (RFC 8555 §6.7 and the validation methods of §8).
var problemActions = map[string]string{
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
