package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/metricstest"
	"github.com/certfleet/certfleet/metrics"
)

// TestMetricsEndpoint: /metrics on the API listener needs a token with
// read-certs for every name; every agent report is a check-in
// (Server.OnAgentReport), and an install an agent deploy (Server.Events).
func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, 1)
	m := metrics.New(metrics.Options{Store: e.store, Fleet: e.store})
	e.srv.Events, e.srv.OnAgentReport = m, m.AgentCheckin
	h := httptest.NewServer(e.srv.MetricsHandler(m.Handler()))
	t.Cleanup(h.Close)
	url := h.URL + "/metrics"

	urlCred := e.token(nil, true, certfleet.PermReadCerts)
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"not a token", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"URL credential as bearer", []string{"Authorization", "Bearer " + urlCred}, http.StatusUnauthorized},
		{"scoped to some names", []string{"Authorization", "Bearer " + e.token([]string{"*.example.org"}, false, certfleet.PermReadCerts)}, http.StatusForbidden},
		{"all names, no read-certs", []string{"Authorization", "Bearer " + e.token(nil, false, certfleet.PermRequestNames)}, http.StatusForbidden},
		{"read-certs for all names", []string{"Authorization", "Bearer " + e.token(nil, false, certfleet.PermReadCerts)}, http.StatusOK},
		{"admin", []string{"Authorization", "Bearer " + e.token(nil, false, certfleet.PermAdmin)}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, status, err := metricstest.Scrape(url, tc.header...)
			if err != nil || status != tc.want {
				t.Errorf("status %d (%v), want %d", status, err, tc.want)
			}
		})
	}
	if resp, err := http.Post(url, "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %v %v, want 405", resp.StatusCode, err)
	}

	st := e.issue("agent.certfleet.test", nil)
	installed := time.Now()
	reader := e.token(nil, false, certfleet.PermReadCerts)
	for range 2 {
		if err := e.client(reader).Report(t.Context(), "lb1", httpapi.ReportRequest{Name: "agent.certfleet.test",
			Serial: st.Keys[0].Serial, Fingerprint: "ab12", InstalledAt: installed}); err != nil {
			t.Fatalf("report: %v", err)
		}
	}
	f := metricstest.MustScrape(t, url, "Authorization", "Bearer "+reader)
	if v, _ := f.Value("certfleet_agent_checkins_total", "agent", "lb1"); v != 2 {
		t.Errorf("check-ins of lb1 = %v, want 2:\n%s", v, f.String("certfleet_agent_checkins_total"))
	}
	if v, ok := f.Value("certfleet_agent_last_checkin_timestamp_seconds", "agent", "lb1"); !ok || v <= 0 {
		t.Errorf("last check-in of lb1 = %v (%v)", v, ok)
	}
	// Only the first report changed something: one agent deploy, counted
	// from the API's audit event.
	if v, _ := f.Value("certfleet_deploys_total", "outcome", "ok", "where", "agent"); v != 1 {
		t.Errorf("agent deploys = %v, want 1:\n%s", v, f.String("certfleet_deploys_total"))
	}
}
