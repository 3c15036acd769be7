package dashboard_test

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/dashboard"
	"github.com/certfleet/certfleet/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden pages in testdata/")

// TestGolden renders the pages of a small fleet at a fixed time and
// compares them with testdata/*.html (go test ./dashboard -run TestGolden
// -update rewrites them; review the diff). Only the CSRF token, which is
// random per session, is masked.
func TestGolden(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	web := storetest.NewSpec("web")
	web.Identifiers = append(web.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "www.web.example.org"})
	mail := storetest.NewSpec("mail", certfleet.ECDSAP256, certfleet.RSA2048)
	broken := storetest.NewSpec("broken")
	e := newEnv(t, web, mail, broken)
	e.srv = &dashboard.Server{Store: e.store, Now: func() time.Time { return now }}
	e.http.Close()
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.http.Close)
	ctx := t.Context()

	issued := map[certfleet.JobKey]certfleet.Issuance{}
	for _, k := range append(web.JobKeys(), mail.JobKeys()...) {
		sp := web
		if k.Spec == "mail" {
			sp = mail
		}
		e.claim(k)
		iss := storetest.NewIssuance(sp, k.KeyType)
		iss.Serial, iss.Fingerprint = "5e11a1"+string(k.KeyType[0]), strings.Repeat(string(k.KeyType[:2]), 16)
		iss.NotBefore, iss.NotAfter, iss.IssuedAt = now.Add(-24*time.Hour), now.Add(89*24*time.Hour), now.Add(-24*time.Hour)
		iss, err := e.store.CompleteIssuance(ctx, "test", iss, certfleet.ScheduleUpdate{NextAt: now.Add(59 * 24 * time.Hour)},
			certfleet.Attempt{Instance: "test", StartedAt: iss.IssuedAt.Add(-time.Minute), FinishedAt: iss.IssuedAt, Outcome: certfleet.OutcomeIssued,
				OrderURL: "https://ca.example/order/" + k.String()})
		if err != nil {
			t.Fatal(err)
		}
		issued[k] = iss
	}
	bk := broken.JobKeys()[0]
	e.claim(bk)
	if err := e.store.FailJob(ctx, bk, "test", certfleet.Attempt{Instance: "test", StartedAt: now.Add(-3 * time.Minute), FinishedAt: now.Add(-2 * time.Minute),
		Outcome: certfleet.OutcomeFailed, OrderURL: "https://ca.example/order/broken",
		Error:       `authorization for "broken.example.org" (http-01) invalid: 404 from http://broken.example.org/.well-known/acme-challenge/x`,
		ProblemType: "urn:ietf:params:acme:error:unauthorized"}, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	webKey := web.JobKeys()[0]
	for _, r := range []certfleet.AgentReport{
		{Agent: "lb1", Serial: issued[webKey].Serial, Fingerprint: issued[webKey].Fingerprint},
		{Agent: "lb2", Serial: "01d", Fingerprint: "00", Error: "reload nginx: exit status 1"},
	} {
		r.Certificate, r.KeyType, r.NotAfter, r.InstalledAt, r.ReportedAt, r.TokenID = "web", certfleet.ECDSAP256, now.Add(time.Hour), now.Add(-time.Hour), now.Add(-5*time.Minute), "tok_agent"
		if err := e.store.PutAgentReport(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.PutHeartbeat(ctx, certfleet.Heartbeat{Instance: "golden-1", StartedAt: now.Add(-time.Hour), RoundAt: now.Add(-12 * time.Second), Interval: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	_, secret, hash := certfleet.NewTokenSecret()
	if err := e.store.CreateToken(ctx, certfleet.Token{ID: "tok_golden", Description: "ops", Names: []string{"*"},
		Permissions: []certfleet.Permission{certfleet.PermAdmin}, Hash: hash, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	c := e.login(secret)

	csrf := regexp.MustCompile(`name="csrf" value="[^"]+"`)
	for _, tc := range []struct {
		file, path string
		cookie     *http.Cookie
	}{
		{"login.html", "/dashboard/login", nil},
		{"list.html", "/dashboard/", c},
		{"list-failing.html", "/dashboard/?status=failing", c},
		{"cert-web.html", "/dashboard/cert/web", c},
		{"cert-broken.html", "/dashboard/cert/broken?retried=1", c},
		{"not-found.html", "/dashboard/cert/nosuch", c},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := e.do("GET", tc.path, tc.cookie, nil, nil)
			got := csrf.ReplaceAll([]byte(r.body), []byte(`name="csrf" value="CSRF"`))
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("GET %s differs from %s (run with -update and review the diff):\n%s", tc.path, path, got)
			}
		})
	}
}
