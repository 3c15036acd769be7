package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/chromium"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestDashboardInBrowser drives Debian's Chromium, headless, against the
// real daemon's dashboard: certificates issued by an in-process Pebble, one
// of which fails validation for real (a webroot nobody serves), and agent
// reports for the fleet column. It logs in through the login form with
// real keyboard and mouse input, checks that the list shows the
// certificates, the failure and the CA's problem type, presses the retry
// button, and saves screenshots (see artifactDir). Under CI a missing
// Chromium fails the test (.ci/install-chromium.sh installs it).
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browserPath, err := chromium.Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and the dashboard must be tested in a real browser: %v", err)
		}
		t.Skipf("SKIPPING the dashboard browser test: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	webroot := t.TempDir() // served by nobody: validation fails for real
	const certs = `[api]
listen = "127.0.0.1:0"
[alerts]
stale_grace = "1s"
[self_test]
enabled = false # the test's names resolve nowhere: broken fails at the CA, as it would without a self-test
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test", "www.web.certfleet.test"]
[[certificate]]
name = "mail"
identifiers = ["mail.certfleet.test"]
key_types = ["ecdsa-p256", "rsa2048"]
[[certificate]]
name = "broken"
identifiers = ["broken.certfleet.test"]
challenge = "webroot"
webroot = %q
[[certificate]]
name = "flaky"
`
	// flaky is issued, then given a second name through the webroot
	// nobody serves: an issued certificate whose renewal fails, for the
	// timeline.
	const flaky1 = `identifiers = ["flaky.certfleet.test"]
`
	const flaky2 = `identifiers = ["flaky.certfleet.test", "www.flaky.certfleet.test"]
challenge = "webroot"
webroot = %q
`
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(certs+flaky1, webroot))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Open(ctx, cfg, daemon.Options{StartResponders: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rep, err := d.IssueOnce(ctx)
	if err != nil || rep.Issued != 4 || rep.Failed != 1 {
		t.Fatalf("issue: %d issued, %d failed (want 4 and 1): %v %+v", rep.Issued, rep.Failed, err, rep.Results)
	}
	cfg2, err := config.Load(daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(certs+flaky2, webroot, webroot)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(ctx, cfg2); err != nil {
		t.Fatal(err)
	}

	if rep, err := d.IssueOnce(ctx); err != nil || rep.Failed != 1 || len(rep.Results) != 1 || rep.Results[0].Key.Spec != "flaky" {
		t.Fatalf("issue after flaky's change: %+v, %v; want flaky failing", rep, err)
	}
	brokenKey := certfleet.JobKey{Spec: "broken", KeyType: certfleet.ECDSAP256}
	broken, err := d.Store.Job(ctx, brokenKey)
	if err != nil || broken.LastError == "" {
		t.Fatalf("the broken certificate's job has no error: %+v %v", broken, err)
	}
	atts, err := d.Store.Attempts(ctx, brokenKey, 1)
	if err != nil || len(atts) != 1 || atts[0].ProblemType == "" {
		t.Fatalf("the failed attempt has no ACME problem type: %+v %v", atts, err)
	}
	if !broken.NextAt.After(time.Now()) {
		t.Fatalf("the failed job is due at once (%v); the retry below would prove nothing", broken.NextAt)
	}

	store, err := daemon.APIStore(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	tok, secret, err := daemon.CreateToken(ctx, store, "ops on-call", []string{"*"}, []certfleet.Permission{certfleet.PermAdmin}, false)
	if err != nil {
		t.Fatal(err)
	}
	addr, _, err := d.StartAPI(ctx, daemon.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Two agents report web: lb1 runs the current certificate, lb2 an
	// old one.
	webJob, err := d.Store.Job(ctx, certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	webIss, err := d.Store.Issuance(ctx, webJob.CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	client := &httpapi.Client{BaseURL: "http://" + addr, Token: secret}
	for _, r := range []struct{ agent, serial, fp string }{
		{"lb1", webIss.Serial, webIss.Fingerprint},
		{"lb2", "0badc0de", strings.Repeat("ab", 32)},
	} {
		if err := client.Report(ctx, r.agent, httpapi.ReportRequest{Name: "web.certfleet.test", Serial: r.serial, Fingerprint: r.fp,
			NotAfter: webIss.NotAfter, InstalledAt: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatalf("agent report %s: %v", r.agent, err)
		}
	}

	// The alerts find lb2 on an old certificate past the 1 s grace: a
	// real incident for the incidents page.
	time.Sleep(1100 * time.Millisecond)
	if _, err := d.Alerts.Round(ctx); err != nil {
		t.Fatal(err)
	}
	// A scheduler runs from here (its heartbeat is the liveness the
	// pages show, and it takes the retry below).
	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan error, 1)
	go func() { schedDone <- d.Manager.Run(schedCtx) }()
	defer func() { stopSched(); <-schedDone }()

	b, err := chromium.Start(ctx, browserPath, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	page, err := b.Page(ctx)
	if err != nil {
		t.Fatalf("%v\nchromium: %s", err, b.Log())
	}
	defer page.Close()
	text := func() string {
		t.Helper()
		s, err := page.Text(ctx)
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		return s
	}

	// The bare address leads to the dashboard, which asks for a token.
	if err := page.Navigate(ctx, "http://"+addr+"/"); err != nil {
		t.Fatal(err)
	}
	if got := text(); !strings.Contains(got, "Log in") || !strings.Contains(got, "API token") {
		t.Fatalf("without a session the dashboard should show the login form; it shows:\n%s", got)
	}
	// A wrong token is refused with a message.
	if err := page.Type(ctx, "#token", "cft_not-a-real-token"); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, "#login", true); err != nil {
		t.Fatal(err)
	}
	if got := text(); !strings.Contains(got, "This token is not valid") {
		t.Fatalf("a wrong token should be refused with a message; the page shows:\n%s", got)
	}
	saveScreenshot(t, ctx, page, "dashboard-login.png")
	if err := page.Type(ctx, "#token", secret); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, "#login", true); err != nil {
		t.Fatal(err)
	}
	list := text()
	for _, want := range []string{
		"Certificates", "ops on-call", "web", "www.web.certfleet.test", "mail", "rsa2048", "broken", "broken.certfleet.test",
		"failing", "1 current", "1 old: lb2", "Retry",
		problemWord(atts[0].ProblemType), firstRunes(broken.LastError, 80),
	} {
		if !strings.Contains(list, want) {
			t.Errorf("the certificate list does not show %q; it shows:\n%s", want, list)
		}
	}
	expectElements(t, ctx, page, "the certificate list", map[string]int{
		`tr.row-failing[data-cert="flaky"] .hint-next`: 1, `#liveness.live.ok`: 1, `#schedulers tr.instance.live`: 1, `#nav-timeline`: 1,
	})
	saveScreenshot(t, ctx, page, "dashboard.png")
	if t.Failed() {
		t.FailNow()
	}

	// The retry button makes the failed job due now.
	if err := page.Click(ctx, `tr[data-cert="broken"] button.retry`, true); err != nil {
		t.Fatal(err)
	}
	detail := text()
	// The scheduler took the retried job: ordering it, or it failed again.
	expectElements(t, ctx, page, "the page after the retry", map[string]int{
		`#retry-feedback li.rf[data-key="ecdsa-p256"]`: 1, `#retry-feedback li.rf-waiting`: 0, `#retry-feedback li.rf-not-due`: 0,
	})
	for _, want := range []string{"Retry requested", "broken", "Recent attempts", "failed", atts[0].ProblemType} {
		if !strings.Contains(detail, want) {
			t.Errorf("after the retry the certificate page does not show %q; it shows:\n%s", want, detail)
		}
	}
	// The job was made due: the running scheduler took it (a newer
	// attempt, or its lease), or it is due still.
	after, err := d.Store.Job(ctx, brokenKey)
	if err != nil {
		t.Fatal(err)
	}
	newest, err := d.Store.Attempts(ctx, brokenKey, 1)
	if err != nil {
		t.Fatal(err)
	}
	if after.NextAt.After(time.Now()) && after.LeaseOwner == "" && (len(newest) == 0 || newest[0].ID == atts[0].ID) {
		t.Errorf("after the retry the job is due at %v, not now, and no scheduler took it", after.NextAt)
	}
	// The retry is in the audit trail, with who asked.
	evs, err := d.Store.Events(ctx, certfleet.EventFilter{Kind: certfleet.EventRetry})
	if err != nil || len(evs) != 1 || evs[0].Actor != "token:"+tok.ID || evs[0].Certificate != "broken" {
		t.Errorf("retry events in the audit trail: %+v (%v), want one for broken by token:%s", evs, err, tok.ID)
	}
	saveScreenshot(t, ctx, page, "dashboard-certificate.png")

	// The web certificate's page shows the fleet: lb2 runs an old one.
	if err := page.Navigate(ctx, "http://"+addr+"/dashboard/cert/web"); err != nil {
		t.Fatal(err)
	}
	if got := text(); !strings.Contains(got, "lb1") || !strings.Contains(got, "an old one: lb2") || !strings.Contains(got, certfleet.FormatSerial(webIss.Serial)) {
		t.Errorf("the web certificate's page does not show its fleet and serial; it shows:\n%s", got)
	}

	browseViews(t, ctx, page, "http://"+addr)

	// Logging out ends the session: the list asks for a token again.
	if err := page.Click(ctx, "#logout", true); err != nil {
		t.Fatal(err)
	}
	if err := page.Navigate(ctx, "http://"+addr+"/dashboard/"); err != nil {
		t.Fatal(err)
	}
	if got := text(); !strings.Contains(got, "API token") || strings.Contains(got, "broken.certfleet.test") {
		t.Errorf("after logging out the dashboard should ask for a token; it shows:\n%s", got)
	}
}

func problemWord(pt string) string {
	if i := strings.LastIndexByte(pt, ':'); i >= 0 {
		return pt[i+1:]
	}
	return pt
}

func firstRunes(s string, n int) string {
	r := []rune(s)
	return string(r[:min(len(r), n)])
}

// artifactDir is where the browser test saves its screenshots:
// $CERTFLEET_ARTIFACTS, else .ci/artifacts in the repository (ignored by
// git).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CERTFLEET_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".ci", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact directory: %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func saveScreenshot(t *testing.T, ctx context.Context, page *chromium.Page, name string) {
	t.Helper()
	png, err := page.Screenshot(ctx)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("screenshot saved: %s (%d bytes)", path, len(png))
}

// TestDashboardSessionSurvivesRestart: with a master key the session key is
// a secret in the store, so a login outlives a restart (and is valid on
// every instance of one database); without one, the dashboard signs with a
// key of its own and the session ends with the process.
func TestDashboardSessionSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		masterKey bool
		survives  bool
	}{
		{"master key", true, true},
		{"no master key", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			head := ""
			if tc.masterKey {
				key := filepath.Join(dir, "master.key")
				generateKey(t, key)
				head = fmt.Sprintf("master_key_file = %q\n", key)
			}
			path := filepath.Join(dir, "certfleet.toml")
			cfgText := head + "state = \"certfleet.db\"\n[ca]\ndirectory = \"https://ca.invalid/dir\"\n[http01]\nlisten = \"\"\n[tlsalpn01]\nlisten = \"\"\n" +
				"[api]\nlisten = \"127.0.0.1:0\"\n[[certificate]]\nname = \"web\"\nidentifiers = [\"web.example.org\"]\n"
			if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			start := func() (*daemon.Daemon, string) {
				t.Helper()
				d, err := daemon.Open(t.Context(), cfg, daemon.Options{})
				if err != nil {
					t.Fatal(err)
				}
				addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
				if err != nil {
					d.Close()
					t.Fatal(err)
				}
				return d, "http://" + addr
			}
			noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			list := func(base string, c *http.Cookie) string {
				t.Helper()
				req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/dashboard/", nil)
				req.AddCookie(c)
				resp, err := noRedirect.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return string(b)
			}

			d1, base := start()
			store, err := daemon.APIStore(d1.Store)
			if err != nil {
				t.Fatal(err)
			}
			_, secret, err := daemon.CreateToken(t.Context(), store, "ops", []string{"*"}, []certfleet.Permission{certfleet.PermReadCerts}, false)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := noRedirect.PostForm(base+"/dashboard/login", url.Values{"token": {secret}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var cookie *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == "certfleet_session" {
					cookie = c
				}
			}
			if resp.StatusCode != http.StatusSeeOther || cookie == nil {
				t.Fatalf("login: status %d, cookie %v", resp.StatusCode, cookie)
			}
			if got := list(base, cookie); !strings.Contains(got, "web.example.org") {
				t.Fatalf("the session does not work on the daemon that made it:\n%s", got)
			}
			d1.Close()

			d2, base := start()
			defer d2.Close()
			got := list(base, cookie)
			if survived := strings.Contains(got, "web.example.org"); survived != tc.survives {
				t.Errorf("after a restart the session survived: %v, want %v:\n%s", survived, tc.survives, got)
			}
			if !tc.survives && !strings.Contains(got, `name="token"`) {
				t.Errorf("after a restart without a master key the dashboard should ask for the token again:\n%s", got)
			}
		})
	}
}
