package endpoint

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// Status is the outcome of comparing what an endpoint serves with what was
// issued.
type Status string

// Statuses, from good to bad. Only StatusOK is not an error.
const (
	// StatusOK: the endpoint serves a current certificate (the newest
	// issuance of one of the spec's key types), not within WarnBefore of
	// its expiry.
	StatusOK Status = "ok"
	// StatusExpiring: the endpoint serves a current certificate, but it
	// expires within WarnBefore — renewal is failing or late.
	StatusExpiring Status = "expiring"
	// StatusExpired: the endpoint serves a current certificate that has
	// expired.
	StatusExpired Status = "expired"
	// StatusStale: the endpoint serves an older certificate for the same
	// names — an earlier issuance from the archive, or one that predates
	// certfleet. The new one was not deployed, or the service not reloaded.
	StatusStale Status = "stale"
	// StatusMismatch: the endpoint serves a certificate that is not ours:
	// different names (a default or another virtual host's certificate; check
	// the SNI name), or a newer certificate someone else issued.
	StatusMismatch Status = "mismatch"
	// StatusUnknown: nothing has been issued yet to compare with.
	StatusUnknown Status = "unknown"
)

// Expectation is what an endpoint should serve.
type Expectation struct {
	// Current holds the newest issuance of each key type of the spec (two
	// for a dual certificate): serving any of them is right.
	Current []certfleet.Issuance
	// Archive holds earlier issuances of the spec, so that a stale
	// certificate can be named. Optional; it may include Current too.
	Archive []certfleet.Issuance
	// WarnBefore: a served current certificate that expires within this
	// is StatusExpiring. Zero flags only expired certificates. Choose it
	// below the renewal margin: a certificate still this close to expiry
	// while served means renewal or deployment is failing.
	WarnBefore time.Duration
}

// Verdict is the outcome of Compare.
type Verdict struct {
	Status Status
	// Message is one line for people: what is served and what should be.
	Message string
	// ServedSerial and ServedNotAfter describe the served leaf.
	ServedSerial   string
	ServedNotAfter time.Time
	// WantSerial is the serial of the current issuance the endpoint
	// should serve (the first of Expectation.Current when it serves none).
	WantSerial string
	// ServedIssuance is the archive ID of the served certificate, 0 when it
	// is not in Current or Archive.
	ServedIssuance int64
	// Warnings are problems that do not change the status: the served chain
	// does not verify (a missing intermediate, a name the certificate does
	// not cover).
	Warnings []string
}

// OK reports whether the status is StatusOK.
func (v Verdict) OK() bool { return v.Status == StatusOK }

// Err returns nil for StatusOK and an error carrying the message otherwise.
func (v Verdict) Err() error {
	if v.OK() {
		return nil
	}
	return errors.New(v.Message)
}

// Compare decides whether the result shows the certificate the expectation
// wants. It is pure: the same inputs give the same verdict.
//
// Precedence: an unknown certificate is a mismatch; one of ours that is not
// current is stale; a current one is expired, expiring or ok by its expiry.
// A stale certificate that has also expired says so in its message.
func Compare(r Result, want Expectation, now time.Time) Verdict {
	v := Verdict{ServedSerial: r.Serial, ServedNotAfter: r.NotAfter}
	if r.Leaf != nil && !r.ChainVerified && r.VerifyError != "" {
		v.Warnings = append(v.Warnings, "the served chain does not verify: "+r.VerifyError+" (serve fullchain.pem, not cert.pem, and check the SNI name)")
	}
	if len(want.Current) == 0 {
		v.Status = StatusUnknown
		v.Message = fmt.Sprintf("serves %s; nothing issued yet to compare with", describe(r))
		return v
	}
	newest, current := want.Current[0], false
	for _, iss := range want.Current {
		if r.Fingerprint != "" && iss.Fingerprint == r.Fingerprint {
			newest, current = iss, true
			v.ServedIssuance = iss.ID
			break
		}
	}
	v.WantSerial = newest.Serial
	if current {
		left := r.NotAfter.Sub(now)
		switch {
		case left <= 0:
			v.Status = StatusExpired
			v.Message = fmt.Sprintf("serves the current certificate (serial %s, %s), but it expired at %s", certfleet.FormatSerial(r.Serial), newest.KeyType, r.NotAfter.UTC().Format(time.RFC3339))
		case left <= want.WarnBefore:
			v.Status = StatusExpiring
			v.Message = fmt.Sprintf("serves the current certificate (serial %s, %s), but it expires in %s, at %s: renewal is late", certfleet.FormatSerial(r.Serial), newest.KeyType, roundDuration(left), r.NotAfter.UTC().Format(time.RFC3339))
		default:
			v.Status = StatusOK
			v.Message = fmt.Sprintf("serves the current certificate (serial %s, %s), expiring %s", certfleet.FormatSerial(r.Serial), newest.KeyType, r.NotAfter.UTC().Format(time.RFC3339))
		}
		return v
	}

	expired := ""
	if !r.NotAfter.After(now) {
		expired = ", which has expired"
	}
	for _, iss := range want.Archive {
		if r.Fingerprint != "" && iss.Fingerprint == r.Fingerprint {
			v.Status = StatusStale
			v.ServedIssuance = iss.ID
			v.Message = fmt.Sprintf("serves an older certificate (serial %s, issuance %d, %s, issued %s%s) instead of the current one (serial %s, issuance %d): deploy it or reload the service",
				certfleet.FormatSerial(r.Serial), iss.ID, iss.KeyType, iss.IssuedAt.UTC().Format(time.RFC3339), expired, certfleet.FormatSerial(newest.Serial), newest.ID)
			return v
		}
	}
	if r.Leaf != nil && coversAll(r.Leaf.DNSNames, r.Leaf.IPAddresses, newest.Identifiers) && !r.Leaf.NotBefore.After(newest.NotBefore) {
		v.Status = StatusStale
		v.Message = fmt.Sprintf("serves an older certificate for the same names that certfleet did not issue (serial %s, issuer %q%s) instead of the current one (serial %s, issuance %d): deploy it or reload the service",
			certfleet.FormatSerial(r.Serial), r.Leaf.Issuer.String(), expired, certfleet.FormatSerial(newest.Serial), newest.ID)
		return v
	}
	v.Status = StatusMismatch
	why := "a certificate for other names"
	if r.Leaf != nil && coversAll(r.Leaf.DNSNames, r.Leaf.IPAddresses, newest.Identifiers) {
		why = "a newer certificate for the same names that certfleet did not issue"
	}
	v.Message = fmt.Sprintf("serves %s (%s) instead of the current one (serial %s, issuance %d, names %s): check the SNI name and which certificate the service is configured with",
		why, describe(r), certfleet.FormatSerial(newest.Serial), newest.ID, strings.Join(certfleet.IdentifierValues(newest.Identifiers), " "))
	return v
}

// describe names the served leaf: serial, names, issuer.
func describe(r Result) string {
	if r.Leaf == nil {
		return "serial " + certfleet.FormatSerial(r.Serial)
	}
	names := append([]string(nil), r.Leaf.DNSNames...)
	for _, ip := range r.Leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{"CN=" + r.Leaf.Subject.CommonName}
	}
	const maxNames = 5
	if len(names) > maxNames {
		names = append(names[:maxNames], fmt.Sprintf("and %d more", len(names)-maxNames))
	}
	return fmt.Sprintf("serial %s, names %s, issuer %q", certfleet.FormatSerial(r.Serial), strings.Join(names, " "), r.Leaf.Issuer.String())
}

// coversAll reports whether the certificate names include every identifier
// (compared as normalised text; a wildcard identifier must appear as the same
// wildcard).
func coversAll(dns []string, ips []net.IP, ids []certfleet.Identifier) bool {
	have := make(map[string]bool, len(dns)+len(ips))
	for _, n := range dns {
		have[strings.ToLower(strings.TrimSuffix(n, "."))] = true
	}
	for _, ip := range ips {
		have[ip.String()] = true
	}
	for _, id := range ids {
		if !have[id.Value] {
			return false
		}
	}
	return len(ids) > 0
}

func roundDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	default:
		return d.Round(time.Second).String()
	}
}
