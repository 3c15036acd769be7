package certfleet

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseEventTime(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: "2026-03-01T12:30:00Z", want: time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)},
		{in: "2026-03-01T12:30:00+02:00", want: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)},
		{in: "2026-03-01", want: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "", err: "empty time"},
		{in: "yesterday", err: "RFC 3339"},
		{in: "-5h", err: "must not be negative"},
		{in: "1.5d", err: "whole number"},
		{in: "2026-13-01", err: "RFC 3339"},
	} {
		got, err := ParseEventTime(c.in, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseEventTime(%q) = %v, %v; want an error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("ParseEventTime(%q) = %v, %v; want %v (UTC)", c.in, got, err, c.want)
		}
	}
}

func TestClipEventDetail(t *testing.T) {
	for _, n := range []int{0, 1, MaxEventDetail - 1, MaxEventDetail} {
		s := strings.Repeat("a", n)
		if got := ClipEventDetail(s); got != s {
			t.Errorf("a Detail of %d bytes was changed", n)
		}
	}
	for _, s := range []string{strings.Repeat("a", MaxEventDetail+1), strings.Repeat("ü", MaxEventDetail), strings.Repeat("😀", MaxEventDetail)} {
		got := ClipEventDetail(s)
		if len(got) > MaxEventDetail || !utf8.ValidString(got) || !strings.Contains(got, TruncatedMark) {
			t.Errorf("clipping %d bytes: got %d bytes, valid UTF-8 %v, marked %v", len(s), len(got), utf8.ValidString(got), strings.Contains(got, TruncatedMark))
		}
	}
}

func TestActorType(t *testing.T) {
	for in, want := range map[string]string{"token:tok_1": "token", "config:/etc/a:b": "config", "nocolon": "nocolon", "": ""} {
		if got := ActorType(in); got != want {
			t.Errorf("ActorType(%q) = %q, want %q", in, got, want)
		}
	}
}
