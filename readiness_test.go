package certfleet_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

func TestReadiness(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	// A 24-hour certificate: the limit is 2.4 h. A 90-day one: 9 days.
	day := certfleet.CurrentCertificate{Spec: "web", KeyType: certfleet.ECDSAP256, Serial: "0a", Fingerprint: "f0",
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(23 * time.Hour), IssuedAt: t0}
	quarter := certfleet.CurrentCertificate{Spec: "mail", KeyType: certfleet.RSA2048, Serial: "0b", Fingerprint: "f1",
		NotBefore: t0, NotAfter: t0.Add(90 * 24 * time.Hour), IssuedAt: t0}
	limit := 144 * time.Minute
	report := func(agent string, c certfleet.CurrentCertificate, fp string, installed, reported time.Time) certfleet.AgentReport {
		return certfleet.AgentReport{Agent: agent, Certificate: c.Spec, KeyType: c.KeyType, Fingerprint: fp,
			InstalledAt: installed, ReportedAt: reported}
	}
	type want struct {
		source, subject string
		measured        time.Duration
		pending         bool
	}
	tests := []struct {
		name string
		in   certfleet.ReadinessInput
		want []want
	}{
		{
			name: "agent checked in recently and installed quickly",
			in: certfleet.ReadinessInput{Now: t0.Add(3 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Agents: []certfleet.AgentCheckin{{Report: report("lb1", day, "f0", t0.Add(time.Minute), t0.Add(170*time.Minute)),
					Previous: t0.Add(160 * time.Minute)}}},
		},
		{
			name: "agent silent for longer than a tenth",
			in: certfleet.ReadinessInput{Now: t0.Add(3 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Agents: []certfleet.AgentCheckin{{Report: report("lb1", day, "f0", t0.Add(time.Minute), t0.Add(time.Minute))}}},
			want: []want{{certfleet.ReadinessAgentCheckin, "lb1", 179 * time.Minute, false}},
		},
		{
			name: "agent's last gap between check-ins too long, though it just checked in",
			in: certfleet.ReadinessInput{Now: t0.Add(5 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Agents: []certfleet.AgentCheckin{{Report: report("lb1", day, "f0", t0.Add(time.Minute), t0.Add(5*time.Hour)),
					Previous: t0.Add(time.Hour)}}},
			want: []want{{certfleet.ReadinessAgentCheckin, "lb1", 4 * time.Hour, false}},
		},
		{
			name: "the same gap is fine for a 90-day certificate",
			in: certfleet.ReadinessInput{Now: t0.Add(5 * time.Hour), Certificates: []certfleet.CurrentCertificate{quarter},
				Agents: []certfleet.AgentCheckin{{Report: report("lb1", quarter, "f1", t0.Add(time.Minute), t0.Add(5*time.Hour)),
					Previous: t0.Add(time.Hour)}}},
		},
		{
			name: "installed too late",
			in: certfleet.ReadinessInput{Now: t0.Add(3 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Agents: []certfleet.AgentCheckin{{Report: report("lb2", day, "f0", t0.Add(150*time.Minute), t0.Add(170*time.Minute))}}},
			want: []want{{certfleet.ReadinessDeploy, "lb2", 150 * time.Minute, false}},
		},
		{
			name: "not installed yet, and issuance was long ago",
			in: certfleet.ReadinessInput{Now: t0.Add(3 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Agents: []certfleet.AgentCheckin{{Report: report("lb3", day, "old", t0.Add(-time.Hour), t0.Add(170*time.Minute))}}},
			want: []want{{certfleet.ReadinessDeploy, "lb3", 3 * time.Hour, true}},
		},
		{
			name: "not installed yet, within the limit",
			in: certfleet.ReadinessInput{Now: t0.Add(2 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Agents: []certfleet.AgentCheckin{{Report: report("lb3", day, "old", t0.Add(-time.Hour), t0.Add(110*time.Minute))}}},
		},
		{
			name: "installed-at missing: the report time counts",
			in: certfleet.ReadinessInput{Now: t0.Add(3 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Agents: []certfleet.AgentCheckin{{Report: report("lb4", day, "f0", time.Time{}, t0.Add(150*time.Minute)),
					Previous: t0.Add(140 * time.Minute)}}},
			want: []want{{certfleet.ReadinessDeploy, "lb4", 150 * time.Minute, false}},
		},
		{
			name: "endpoint seen stale long after issuance",
			in: certfleet.ReadinessInput{Now: t0.Add(4 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Endpoints: []certfleet.EndpointObservation{{Certificate: "web", KeyType: certfleet.ECDSAP256, Endpoint: "tls://a:443",
					StaleAt: t0.Add(3 * time.Hour), StaleSerial: "09"}}},
			want: []want{{certfleet.ReadinessEndpointReload, "tls://a:443", 3 * time.Hour, false}},
		},
		{
			name: "endpoint stale only before this issuance",
			in: certfleet.ReadinessInput{Now: t0.Add(4 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Endpoints: []certfleet.EndpointObservation{{Certificate: "web", KeyType: certfleet.ECDSAP256, Endpoint: "tls://a:443",
					StaleAt: t0.Add(-time.Minute), StaleSerial: "09"}}},
		},
		{
			name: "endpoint stale briefly after issuance",
			in: certfleet.ReadinessInput{Now: t0.Add(4 * time.Hour), Certificates: []certfleet.CurrentCertificate{day},
				Endpoints: []certfleet.EndpointObservation{{Certificate: "web", KeyType: certfleet.ECDSAP256, Endpoint: "tls://a:443",
					StaleAt: t0.Add(10 * time.Second), StaleSerial: "09"}}},
		},
		{
			name: "no current certificate: nothing to measure against",
			in: certfleet.ReadinessInput{Now: t0.Add(40 * time.Hour),
				Agents: []certfleet.AgentCheckin{{Report: report("lb1", day, "", time.Time{}, t0)}},
				Endpoints: []certfleet.EndpointObservation{{Certificate: "web", KeyType: certfleet.ECDSAP256, Endpoint: "tls://a:443",
					StaleAt: t0.Add(30 * time.Hour)}}},
		},
		{
			name: "several at once, sorted",
			in: certfleet.ReadinessInput{Now: t0.Add(3 * time.Hour), Certificates: []certfleet.CurrentCertificate{day, quarter},
				Agents: []certfleet.AgentCheckin{
					{Report: report("zz", day, "old", time.Time{}, t0.Add(-time.Hour))},
					{Report: report("aa", quarter, "f1", t0, t0)},
				},
				Endpoints: []certfleet.EndpointObservation{{Certificate: "web", KeyType: certfleet.ECDSAP256, Endpoint: "tls://a:443",
					StaleAt: t0.Add(3 * time.Hour)}}},
			want: []want{
				{certfleet.ReadinessAgentCheckin, "zz", 4 * time.Hour, false},
				{certfleet.ReadinessDeploy, "zz", 3 * time.Hour, true},
				{certfleet.ReadinessEndpointReload, "tls://a:443", 3 * time.Hour, false},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := certfleet.Readiness(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d violations, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Source != w.source || g.Subject != w.subject || g.Measured != w.measured || g.Pending != w.pending {
					t.Errorf("violation %d = %s %s %s pending=%v, want %s %s %s pending=%v", i,
						g.Source, g.Subject, g.Measured, g.Pending, w.source, w.subject, w.measured, w.pending)
				}
				if g.Certificate == "web" && g.Limit != limit {
					t.Errorf("limit %s, want %s", g.Limit, limit)
				}
				if s := g.String(); !strings.Contains(s, g.Subject) || !strings.Contains(s, "1/10") {
					t.Errorf("message %q does not name the subject and the fraction", s)
				}
			}
		})
	}
}

func TestReadinessLimit(t *testing.T) {
	for _, tc := range []struct {
		lifetime, want time.Duration
	}{
		{90 * 24 * time.Hour, 9 * 24 * time.Hour},
		{6 * 24 * time.Hour, 864 * time.Minute},
		{24 * time.Hour, 144 * time.Minute},
		{0, 0},
		{-time.Hour, 0},
	} {
		if got := certfleet.ReadinessLimit(tc.lifetime); got != tc.want {
			t.Errorf("ReadinessLimit(%s) = %s, want %s", tc.lifetime, got, tc.want)
		}
	}
}
