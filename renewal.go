package certfleet

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"math/rand/v2"
	"time"
)

// ShortLived is the lifetime at or under which a certificate is renewed at half
// its lifetime instead of with a third left: with 6-day certificates a third
// (2 days) leaves too little room for a failing CA to recover.
const ShortLived = 10 * 24 * time.Hour

// DefaultRenewalTime returns when to renew a certificate valid from notBefore
// to notAfter when the CA offers no ARI window: renewBefore ahead of expiry if
// set (and shorter than the lifetime), else with a third of the lifetime left,
// or at half of it for short-lived certificates.
func DefaultRenewalTime(notBefore, notAfter time.Time, renewBefore time.Duration) time.Time {
	lifetime := notAfter.Sub(notBefore)
	if renewBefore > 0 && renewBefore < lifetime {
		return notAfter.Add(-renewBefore)
	}
	if lifetime <= ShortLived {
		return notBefore.Add(lifetime / 2)
	}
	return notAfter.Add(-lifetime / 3)
}

// ARIRenewalTime picks the renewal time inside a suggested window. RFC 9773
// §4.2: "the client SHOULD select a uniform random time within the suggested
// window". r is a number in [0, 1) (rand.Float64 in production). When the
// window ends in the past, the time is now: renew immediately.
// renewBefore, when set, can only make the time earlier (ours: an operator's
// explicit margin is respected even under ARI).
func ARIRenewalTime(w RenewalInfo, notBefore, notAfter time.Time, renewBefore time.Duration, now time.Time, r float64) time.Time {
	t := w.Start
	if span := w.End.Sub(w.Start); span > 0 {
		t = w.Start.Add(time.Duration(float64(span) * r))
	}
	// A margin as long as the lifetime would renew at once, again and
	// again: it is ignored, as in DefaultRenewalTime.
	if renewBefore > 0 && renewBefore < notAfter.Sub(notBefore) {
		if limit := notAfter.Add(-renewBefore); limit.Before(t) {
			t = limit
		}
	}
	if !w.End.After(now) {
		return now
	}
	return t
}

// Backoff steps for failed attempts: the first retry after BackoffMin, each
// further one after twice as long, never longer than BackoffMax. A minute is
// short enough for a fixed typo to heal fast and long enough never to be a
// tight loop; a day is what Let's Encrypt's own integration guide suggests as
// the slowest useful retry, and with 90-day (or 6-day, renewed at 3 days)
// certificates it still leaves several tries before expiry.
const (
	BackoffMin = time.Minute
	BackoffMax = 24 * time.Hour
)

// Backoff returns how long to wait after the failures-th consecutive failure
// (1 for the first). The delay is jittered to between 75% and 100% of the
// step so many certificates failing together (a CA outage) do not retry in
// lockstep. r is a number in [0, 1).
func Backoff(failures int, r float64) time.Duration {
	if failures < 1 {
		failures = 1
	}
	d := BackoffMin
	for i := 1; i < failures && d < BackoffMax; i++ {
		d *= 2
	}
	d = min(d, BackoffMax)
	return d - time.Duration(float64(d)*0.25*r)
}

// RandFloat is the production source of r for ARIRenewalTime and Backoff.
func RandFloat() float64 { return rand.Float64() }

// ARICertID returns a certificate's ARI unique identifier (RFC 9773 §4.1):
// "the base64url-encoding of the bytes of the keyIdentifier field of
// certificate's Authority Key Identifier (AKI) extension, a literal period,
// and the base64url-encoding of the bytes of the DER encoding of the
// certificate's Serial Number (without the tag and length bytes)", with
// trailing "=" stripped. It returns "" for a certificate without an AKI.
func ARICertID(c *x509.Certificate) string {
	if len(c.AuthorityKeyId) == 0 || c.SerialNumber == nil {
		return ""
	}
	der, err := asn1.Marshal(c.SerialNumber)
	if err != nil {
		return ""
	}
	// Skip the INTEGER tag and its length (short or long form).
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(der, &raw); err != nil {
		return ""
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(c.AuthorityKeyId) + "." + enc.EncodeToString(raw.Bytes)
}
