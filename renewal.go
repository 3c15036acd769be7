package certfleet

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"
)

// ShortLived is the lifetime at or under which a certificate is renewed at half
// its lifetime instead of with a third left: with 6-day certificates a third
// (2 days) leaves too little room for a failing CA to recover.
const ShortLived = 10 * 24 * time.Hour

// SafetyMargins is how many readiness limits (ReadinessLimit: a tenth of
// the lifetime each) a renewal leaves before expiry at the latest: one for
// retrying the order (a CA outage, a failed validation, a rate-limit
// wait) and one for distributing the new certificate (agent check-in,
// deploy, reload; each of them must fit in one readiness limit). Ours,
// issue 16: so no renewal is ever placed later than 80% into the
// lifetime, whatever the CA's ARI window or the configured margins say.
const SafetyMargins = 2

// SafetyMargin returns how long before expiry a certificate of the given
// lifetime is renewed at the latest: SafetyMargins readiness limits, a
// fifth of the lifetime (18 days of 90, 2.4 h of 12, 12 s of a minute).
func SafetyMargin(lifetime time.Duration) time.Duration {
	return SafetyMargins * ReadinessLimit(lifetime)
}

// LatestRenewal returns the latest time a certificate valid from
// notBefore to notAfter may be renewed: notAfter less its SafetyMargin.
func LatestRenewal(notBefore, notAfter time.Time) time.Time {
	return notAfter.Add(-SafetyMargin(notAfter.Sub(notBefore)))
}

// Allowances for the renewal itself (issue 16): LatestRenewal is when a
// renewal must be complete, so it must start earlier by the time it takes.
// The 1-minute demo (BENCHMARKS §12) had 41 of 165 renewals that started
// by 80% complete at 0.801–0.816: the scheduler woke up to a second late
// and the order took 0.1–0.4 s.
const (
	// WakeAllowanceFraction: a renewal starts at the latest
	// 1/WakeAllowanceFraction of the lifetime (at most WakeAllowanceMax)
	// before LatestRenewal less the order's duration, for the scheduler's
	// wake-up, its look at the store and the CA's renewalInfo (1.5 s of a
	// minute, 18 min of 12 h). Ours: a fortieth is an eighth of the
	// safety margin, small next to the retries it keeps room for.
	WakeAllowanceFraction = 40
	// WakeAllowanceMax caps the wake-up allowance of long lifetimes (1 h
	// of 90 days, where a fortieth would be 2.25 days): a scheduler that
	// is an hour late is down, which the heartbeat alert reports.
	WakeAllowanceMax = time.Hour
	// OrderAllowanceFraction caps the order's observed duration counted in
	// the allowance at 1/OrderAllowanceFraction of the lifetime (3 s of a
	// minute): one slow order (a rate-limit wait, a CA outage's retries)
	// must not pull every later renewal towards issuance.
	OrderAllowanceFraction = 20
)

// RenewalAllowance returns how much earlier than LatestRenewal a renewal
// of a certificate with the given lifetime starts at the latest, so that
// it completes by LatestRenewal: min(lifetime/WakeAllowanceFraction,
// WakeAllowanceMax) for the scheduler's wake-up, plus orderDuration (how
// long orders take; the scheduler observes it, 0 when unknown) capped at
// lifetime/OrderAllowanceFraction. 0 for a lifetime that is not positive.
func RenewalAllowance(lifetime, orderDuration time.Duration) time.Duration {
	if lifetime <= 0 {
		return 0
	}
	wake := min(lifetime/WakeAllowanceFraction, WakeAllowanceMax)
	order := min(max(orderDuration, 0), lifetime/OrderAllowanceFraction)
	return wake + order
}

// LatestStart returns the latest time a renewal of a certificate valid
// from notBefore to notAfter is started: LatestRenewal less its
// RenewalAllowance, so the new certificate is there by LatestRenewal
// (80% into the lifetime). For a 1-minute certificate whose orders take
// 0.4 s: 48 s - 1.5 s - 0.4 s = 46.1 s (0.768); for 90 days: 72 days
// less an hour and the order.
func LatestStart(notBefore, notAfter time.Time, orderDuration time.Duration) time.Time {
	return LatestRenewal(notBefore, notAfter).Add(-RenewalAllowance(notAfter.Sub(notBefore), orderDuration))
}

// JitterFraction spreads renewals without ARI: each certificate is renewed
// up to 1/JitterFraction of its lifetime earlier than its policy says, at
// a point derived from the certificate (RenewalRand), so a fleet issued
// together does not renew in lockstep (a 90-day certificate within 4.5
// days, a 1-minute one within 3 s). Ours: ARI windows carry the CA's own
// spread (RFC 9773 §4.2) and get none added. The jitter only moves the
// time earlier, never past a limit.
const JitterFraction = 20

// RenewalInput is what RenewalTime decides from.
type RenewalInput struct {
	// NotBefore and NotAfter are the current certificate's validity.
	NotBefore, NotAfter time.Time
	// RenewBefore, when set and shorter than the lifetime, renews at the
	// latest this long before expiry (renew_before).
	RenewBefore time.Duration
	// RenewAfter, when set and shorter than the lifetime, renews at the
	// latest once the certificate is this old (renew_after: renewal by
	// age, as lematt's generateNewCertsAfterDays).
	RenewAfter time.Duration
	// ARI is the CA's suggested window (RFC 9773); zero for none.
	ARI RenewalInfo
	// Now is the current time: a window that ended means renew now.
	Now time.Time
	// R is a number in [0, 1): the point in the ARI window, or the jitter
	// without one. RenewalRand derives it from the certificate.
	R float64
	// OrderDuration is how long an order takes, from the scheduler's
	// claim of the job to the certificate archived (the scheduler's
	// observation; 0 when unknown): the renewal starts this much earlier
	// so that it completes by LatestRenewal (RenewalAllowance).
	OrderDuration time.Duration
}

// RenewalTime returns when to renew a certificate: with an ARI window, a
// point in it (RFC 9773 §4.2: "the client SHOULD select a uniform random
// time within the suggested window"), or now when the window has ended;
// without one, DefaultRenewalTime moved earlier by up to
// 1/JitterFraction of the lifetime. renew_before and renew_after can only
// make it earlier, and it is never later than LatestStart (ours: a CA's
// window running to expiry, as Pebble's does for short certificates,
// leaves room for retries and distribution): the renewal is started by
// LatestStart so that it completes by LatestRenewal, 80% into the
// lifetime, less min(lifetime/40, 1h) for the scheduler's wake-up and the
// order's observed duration (RenewalAllowance).
func RenewalTime(in RenewalInput) time.Time {
	lifetime := in.NotAfter.Sub(in.NotBefore)
	var t time.Time
	if !in.ARI.Start.IsZero() && !in.ARI.End.IsZero() {
		if !in.ARI.End.After(in.Now) {
			return in.Now
		}
		t = in.ARI.Start
		if span := in.ARI.End.Sub(in.ARI.Start); span > 0 {
			t = in.ARI.Start.Add(time.Duration(float64(span) * in.R))
		}
	} else {
		t = DefaultRenewalTime(in.NotBefore, in.NotAfter, in.RenewBefore)
		t = t.Add(-time.Duration(float64(lifetime/JitterFraction) * in.R))
	}
	// A margin as long as the lifetime would renew at once, again and
	// again: it is ignored.
	if in.RenewBefore > 0 && in.RenewBefore < lifetime {
		t = earliest(t, in.NotAfter.Add(-in.RenewBefore))
	}
	if in.RenewAfter > 0 && in.RenewAfter < lifetime {
		t = earliest(t, in.NotBefore.Add(in.RenewAfter))
	}
	if lifetime > 0 {
		t = earliest(t, LatestStart(in.NotBefore, in.NotAfter, in.OrderDuration))
	}
	return t
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// DefaultRenewalTime returns when to renew a certificate valid from notBefore
// to notAfter when the CA offers no ARI window, before jitter:
// renewBefore ahead of expiry if set (and shorter than the lifetime), else
// with a third of the lifetime left, or at half of it for short-lived
// certificates; never later than LatestStart (without an observed order
// duration).
func DefaultRenewalTime(notBefore, notAfter time.Time, renewBefore time.Duration) time.Time {
	lifetime := notAfter.Sub(notBefore)
	var t time.Time
	switch {
	case renewBefore > 0 && renewBefore < lifetime:
		t = notAfter.Add(-renewBefore)
	case lifetime <= ShortLived:
		t = notBefore.Add(lifetime / 2)
	default:
		t = notAfter.Add(-lifetime / 3)
	}
	if lifetime > 0 {
		t = earliest(t, LatestStart(notBefore, notAfter, 0))
	}
	return t
}

// ARIRenewalTime picks the renewal time inside a suggested window: RenewalTime
// with the window, renewBefore and r (a number in [0, 1), the point in the
// window).
func ARIRenewalTime(w RenewalInfo, notBefore, notAfter time.Time, renewBefore time.Duration, now time.Time, r float64) time.Time {
	return RenewalTime(RenewalInput{NotBefore: notBefore, NotAfter: notAfter, RenewBefore: renewBefore, ARI: w, Now: now, R: r})
}

// PlannedRenewal returns when iss, the current issuance of spec, is
// renewed given the CA's ARI window w (zero: none) at now, with orders
// taking orderDuration (RenewalInput.OrderDuration; 0 unknown):
// RenewalTime with the spec's margins and R derived from the certificate,
// so the scheduler on every instance and certfleet status agree on it (up
// to the order duration, which only the scheduler observes).
func PlannedRenewal(spec CertificateSpec, iss Issuance, w RenewalInfo, now time.Time, orderDuration time.Duration) time.Time {
	return RenewalTime(RenewalInput{
		NotBefore: iss.NotBefore, NotAfter: iss.NotAfter,
		RenewBefore: spec.RenewBefore, RenewAfter: spec.RenewAfter,
		ARI: w, Now: now, R: RenewalRand(iss.Fingerprint, w), OrderDuration: orderDuration,
	})
}

// RenewalRand derives RenewalTime's R from the certificate and the window
// (zero without ARI), so that every instance, every re-check of an
// unchanged window, and certfleet status pick the same time instead of
// re-rolling it (which would drift renewals towards the window's end), and
// certificates issued together still get different times.
func RenewalRand(fingerprint string, w RenewalInfo) float64 {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%d", fingerprint, w.Start.Unix(), w.End.Unix())
	return float64(binary.BigEndian.Uint64(h.Sum(nil))>>11) / (1 << 53)
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
