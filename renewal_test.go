package certfleet_test

import (
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestDefaultRenewalTime(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name        string
		lifetime    time.Duration
		renewBefore time.Duration
		want        time.Time
	}{
		{name: "90 days: a third left", lifetime: 90 * day, want: t0.Add(60 * day)},
		{name: "47 days", lifetime: 47 * day, want: t0.Add(47 * day).Add(-47 * day / 3)},
		{name: "6 days: half", lifetime: 6 * day, want: t0.Add(3 * day)},
		{name: "10 days is short-lived", lifetime: 10 * day, want: t0.Add(5 * day)},
		{name: "configured days before", lifetime: 90 * day, renewBefore: 30 * day, want: t0.Add(60 * day)},
		{name: "configured 10 days before", lifetime: 90 * day, renewBefore: 10 * day, want: t0.Add(80 * day)},
		{name: "configured longer than lifetime is ignored", lifetime: 6 * day, renewBefore: 30 * day, want: t0.Add(3 * day)},
		{name: "180 s test profile", lifetime: 180 * time.Second, want: t0.Add(90 * time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := certfleet.DefaultRenewalTime(t0, t0.Add(tc.lifetime), tc.renewBefore)
			if !got.Equal(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestARIRenewalTime(t *testing.T) {
	w := certfleet.RenewalInfo{Start: t0.Add(60 * 24 * time.Hour), End: t0.Add(62 * 24 * time.Hour)}
	notAfter := t0.Add(90 * 24 * time.Hour)
	if got := certfleet.ARIRenewalTime(w, t0, notAfter, 0, t0, 0); !got.Equal(w.Start) {
		t.Errorf("r=0: got %v, want window start %v", got, w.Start)
	}
	if got, want := certfleet.ARIRenewalTime(w, t0, notAfter, 0, t0, 0.5), t0.Add(61*24*time.Hour); !got.Equal(want) {
		t.Errorf("r=0.5: got %v, want %v", got, want)
	}
	if got := certfleet.ARIRenewalTime(w, t0, notAfter, 0, t0, 0.999999); !got.Before(w.End) || got.Before(w.Start) {
		t.Errorf("r≈1: got %v, outside [%v, %v)", got, w.Start, w.End)
	}
	// An explicit margin earlier than the window wins.
	if got, want := certfleet.ARIRenewalTime(w, t0, notAfter, 40*24*time.Hour, t0, 0.5), t0.Add(50*24*time.Hour); !got.Equal(want) {
		t.Errorf("renew_before 40d: got %v, want %v", got, want)
	}
	// A margin as long as the lifetime is ignored (it would renew forever).
	if got, want := certfleet.ARIRenewalTime(w, t0, notAfter, 90*24*time.Hour, t0, 0.5), t0.Add(61*24*time.Hour); !got.Equal(want) {
		t.Errorf("renew_before = lifetime: got %v, want the ARI time %v", got, want)
	}
	// A window in the past (e.g. the CA revoked the certificate): now.
	past := certfleet.RenewalInfo{Start: t0.Add(-2 * time.Hour), End: t0.Add(-time.Hour)}
	if got := certfleet.ARIRenewalTime(past, t0, notAfter, 0, t0, 0.5); !got.Equal(t0) {
		t.Errorf("past window: got %v, want now %v", got, t0)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		r        float64
		want     time.Duration
	}{
		{failures: 0, r: 0, want: time.Minute},
		{failures: 1, r: 0, want: time.Minute},
		{failures: 2, r: 0, want: 2 * time.Minute},
		{failures: 3, r: 0, want: 4 * time.Minute},
		{failures: 3, r: 1, want: 3 * time.Minute},
		{failures: 11, r: 0, want: 1024 * time.Minute},
		{failures: 12, r: 0, want: 24 * time.Hour},
		{failures: 1000, r: 0, want: 24 * time.Hour},
		{failures: 1000, r: 0.5, want: 21 * time.Hour},
	}
	for _, tc := range tests {
		if got := certfleet.Backoff(tc.failures, tc.r); got != tc.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", tc.failures, tc.r, got, tc.want)
		}
	}
	for f := 1; f < 40; f++ {
		if got := certfleet.Backoff(f, 0.99); got < certfleet.BackoffMin*3/4 {
			t.Fatalf("Backoff(%d) = %v: shorter than the minimum step", f, got)
		}
	}
}

// TestARICertID is the known-answer example of RFC 9773 §4.1.
func TestARICertID(t *testing.T) {
	c := &x509.Certificate{
		AuthorityKeyId: []byte{0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4},
		SerialNumber:   big.NewInt(0x87654321),
	}
	if got, want := certfleet.ARICertID(c), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"; got != want {
		t.Fatalf("ARICertID = %q, want %q", got, want)
	}
	if got := certfleet.ARICertID(&x509.Certificate{SerialNumber: big.NewInt(1)}); got != "" {
		t.Fatalf("no AKI: got %q, want empty", got)
	}
}
