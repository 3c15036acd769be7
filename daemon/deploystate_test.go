package daemon_test

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/metricstest"
	"github.com/certfleet/certfleet/status"
)

// TestNothingFailsSilently (issue 15, findings 1 and 2): a certificate
// issued but not written is in the job's state (status, API), every
// one-shot pass fails while a certificate is failing or not written, also
// the passes that do not try it, naming each with its cause and next try,
// and files not written are tried again on their own schedule.
func TestNothingFailsSilently(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	webroot := t.TempDir() // served by nobody: validation fails for real
	certs := `[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
output_dir = "blocked"
[[certificate]]
name = "bad"
identifiers = ["bad.certfleet.test"]
challenge = "webroot"
webroot = "` + webroot + `"
[self_test]
enabled = false # not about self-tests: both orders are placed
`
	path := daemontest.WriteConfig(t, dir, ca, port, certs)
	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, path, clk)
	// Checked at load, the output directory is fine; by the time the
	// certificate is issued a regular file is in its way.
	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, []byte("in the way\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	web := certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256}

	rep, err := d.IssueOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Issued != 1 || rep.Failed != 1 || rep.DeployFailed != 1 || rep.OK() {
		t.Fatalf("first pass: issued %d, failed %d, not written %d, ok %v; want 1, 1, 1, false", rep.Issued, rep.Failed, rep.DeployFailed, rep.OK())
	}
	j, err := d.Store.Job(t.Context(), web)
	if err != nil {
		t.Fatal(err)
	}
	if !j.Deploy.NotWritten() || !strings.Contains(j.Deploy.Error, "blocked") || !j.Deploy.NextAt.After(clk.Now()) {
		t.Fatalf("deploy state of web after a failed write: %+v; want the error, naming the directory, and a next try", j.Deploy)
	}

	// The second pass tries neither (bad waits for its backoff, web is
	// issued), yet it fails, naming both.
	rep, err = d.IssueOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	status.Pass(&out, rep)
	perr := status.PassFailure(rep, path, nil)
	t.Logf("second pass:\n%s%v", out.String(), perr)
	if len(rep.Results) != 0 || perr == nil {
		t.Fatalf("second pass: %d results, error %v; want none tried and a failure", len(rep.Results), perr)
	}
	for _, want := range []string{"FAILING  bad", "[unauthorized]", "next try", "NOT WRITTEN web", "files not written", "blocked"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("second pass output lacks %q", want)
		}
	}
	if !strings.Contains(perr.Error(), "1 certificate(s) failing, 1 issued but not written") {
		t.Errorf("second pass error %q; want the counts of both", perr)
	}
	// Metrics and alerts see it too.
	srv := httptest.NewServer(d.Metrics.Handler())
	defer srv.Close()
	fams := metricstest.MustScrape(t, srv.URL)
	if v, ok := fams.Value("certfleet_certificate_not_written", "certificate", "web"); !ok || v != 1 {
		t.Errorf("certfleet_certificate_not_written{web} = %v (%v), want 1", v, ok)
	}
	if v, _ := fams.Value("certfleet_jobs_not_written"); v != 1 {
		t.Errorf("certfleet_jobs_not_written = %v, want 1", v)
	}
	daemontest.AlertRound(t, d)
	incs, err := d.Store.Incidents(t.Context(), certfleet.IncidentFilter{OpenOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var incident bool
	for _, inc := range incs {
		if inc.Kind == certfleet.IncidentNotWritten && inc.Certificate == "web" && strings.Contains(inc.Summary, "not written") {
			incident = true
		}
	}
	if !incident {
		t.Errorf("open incidents %+v; want a not_written one for web", incs)
	}
	out.Reset()
	if err := status.Certificates(t.Context(), &out, d.Store, false, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "issued, NOT WRITTEN") {
		t.Errorf("status table does not say web is not written:\n%s", out.String())
	}

	// Fixed by hand: the files are written on the deploy schedule,
	// without a new issuance, and the state clears.
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	if n, err := d.RetryDeploys(t.Context()); err != nil || n != 0 {
		t.Fatalf("RetryDeploys before the next try: %d tried, %v; want none", n, err)
	}
	j, _ = d.Store.Job(t.Context(), web) // the second pass tried the files again (issue writes what is behind)
	clk.Set(j.Deploy.NextAt.Add(time.Second))
	if n, err := d.RetryDeploys(t.Context()); err != nil || n != 1 {
		t.Fatalf("RetryDeploys: %d tried, %v; want 1", n, err)
	}
	if _, err := os.Stat(filepath.Join(blocked, "fullchain.pem")); err != nil {
		t.Errorf("web's files after the retry: %v", err)
	}
	if j, _ := d.Store.Job(t.Context(), web); j.Deploy.NotWritten() {
		t.Errorf("deploy state after a successful write: %+v; want cleared", j.Deploy)
	}
	if v, _ := metricstest.MustScrape(t, srv.URL).Value("certfleet_certificate_not_written", "certificate", "web"); v != 0 {
		t.Errorf("certfleet_certificate_not_written{web} once written = %v, want 0", v)
	}
	daemontest.AlertRound(t, d)
	incs, _ = d.Store.Incidents(t.Context(), certfleet.IncidentFilter{OpenOnly: true})
	for _, inc := range incs {
		if inc.Kind == certfleet.IncidentNotWritten {
			t.Errorf("incident %q still open once the files are written", inc.Summary)
		}
	}
}
