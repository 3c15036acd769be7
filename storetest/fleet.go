package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// FleetStore is a store that keeps agent reports.
type FleetStore interface {
	certfleet.Store
	certfleet.FleetStore
}

// RunFleet runs the contract of certfleet.FleetStore: reports round-trip,
// a newer report of the same (agent, certificate, key type) replaces the
// older one, and filters select by agent and certificate.
func RunFleet(t *testing.T, newStore func(t *testing.T) FleetStore) {
	t.Run("AgentReports", func(t *testing.T) { testAgentReports(t, newStore(t)) })
	t.Run("ForgetAgent", func(t *testing.T) { testForgetAgent(t, newStore(t)) })
}

func testForgetAgent(t *testing.T, s FleetStore) {
	ctx := t.Context()
	for _, a := range []string{"lb1", "lb2"} {
		for _, c := range []string{"web", "mail"} {
			if err := s.PutAgentReport(ctx, certfleet.AgentReport{Agent: a, Certificate: c, KeyType: certfleet.ECDSAP256, ReportedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := s.ForgetAgent(ctx, "lb1"); err != nil || n != 2 {
		t.Fatalf("ForgetAgent(lb1) = %d, %v; want 2", n, err)
	}
	got, err := s.AgentReports(ctx, certfleet.AgentReportFilter{})
	if err != nil || len(got) != 2 || got[0].Agent != "lb2" || got[1].Agent != "lb2" {
		t.Fatalf("after forgetting lb1: %+v, %v; want lb2's two reports", got, err)
	}
	if _, err := s.ForgetAgent(ctx, "lb1"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("forget again: %v, want ENOTFOUND", err)
	}
}

func testAgentReports(t *testing.T, s FleetStore) {
	ctx := t.Context()
	at := time.Now().UTC().Truncate(time.Millisecond)
	r := certfleet.AgentReport{Agent: "lb1", Certificate: "web", KeyType: certfleet.ECDSAP256,
		Serial: "01ab", Fingerprint: "ff00", NotAfter: at.Add(90 * 24 * time.Hour), InstalledAt: at.Add(-time.Second),
		Commands: []certfleet.AgentCommand{{Argv: []string{"systemctl", "reload", "nginx"}, ExitCode: 1, Error: "exit status 1", RanAt: at}},
		Error:    "command failed", ReportedAt: at, TokenID: "tok_1"}
	if err := s.PutAgentReport(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.AgentReports(ctx, certfleet.AgentReportFilter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("AgentReports = %+v, %v; want one", got, err)
	}
	g := got[0]
	if g.Agent != r.Agent || g.Certificate != r.Certificate || g.KeyType != r.KeyType || g.Serial != r.Serial ||
		g.Fingerprint != r.Fingerprint || !g.NotAfter.Equal(r.NotAfter) || !g.InstalledAt.Equal(r.InstalledAt) ||
		!g.ReportedAt.Equal(r.ReportedAt) || g.Error != r.Error || g.TokenID != r.TokenID ||
		len(g.Commands) != 1 || !slices.Equal(g.Commands[0].Argv, r.Commands[0].Argv) || g.Commands[0].ExitCode != 1 ||
		g.Commands[0].Error != "exit status 1" || !g.Commands[0].RanAt.Equal(at) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", g, r)
	}

	// A newer report replaces it; an empty one (nothing installed) keeps
	// zero times.
	r2 := r
	r2.Serial, r2.Fingerprint, r2.Error, r2.Commands, r2.ReportedAt = "02cd", "ee11", "", nil, at.Add(time.Minute)
	if err := s.PutAgentReport(ctx, r2); err != nil {
		t.Fatal(err)
	}
	others := []certfleet.AgentReport{
		{Agent: "lb2", Certificate: "web", KeyType: certfleet.ECDSAP256, ReportedAt: at},
		{Agent: "lb1", Certificate: "web", KeyType: certfleet.RSA2048, Serial: "03", Fingerprint: "aa", ReportedAt: at},
		{Agent: "lb1", Certificate: "mail", KeyType: certfleet.ECDSAP256, Serial: "04", Fingerprint: "bb", ReportedAt: at},
	}
	for _, o := range others {
		if err := s.PutAgentReport(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	got, err = s.AgentReports(ctx, certfleet.AgentReportFilter{Certificate: "web"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, g := range got {
		keys = append(keys, g.Certificate+"/"+string(g.KeyType)+"/"+g.Agent+"/"+g.Serial)
	}
	want := []string{"web/ecdsa-p256/lb1/02cd", "web/ecdsa-p256/lb2/", "web/rsa2048/lb1/03"}
	if !slices.Equal(keys, want) {
		t.Fatalf("reports of web = %v, want %v", keys, want)
	}
	if got[0].Error != "" || len(got[0].Commands) != 0 || !got[0].ReportedAt.Equal(r2.ReportedAt) {
		t.Errorf("replaced report = %+v, want error and commands cleared", got[0])
	}
	if !got[1].InstalledAt.IsZero() || !got[1].NotAfter.IsZero() {
		t.Errorf("empty report has times %v %v, want zero", got[1].InstalledAt, got[1].NotAfter)
	}
	got, err = s.AgentReports(ctx, certfleet.AgentReportFilter{Agent: "lb1"})
	if err != nil || len(got) != 3 {
		t.Fatalf("reports of lb1 = %d, %v; want 3", len(got), err)
	}
	got, _ = s.AgentReports(ctx, certfleet.AgentReportFilter{Agent: "lb1", Certificate: "mail"})
	if len(got) != 1 || got[0].Serial != "04" {
		t.Fatalf("reports of lb1 for mail = %+v", got)
	}
	if err := s.PutAgentReport(ctx, certfleet.AgentReport{Certificate: "web", KeyType: certfleet.ECDSAP256}); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Errorf("report without agent: %v, want EINVALID", err)
	}
}
