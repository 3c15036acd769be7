package config

import (
	"strings"
	"testing"
	"time"
)

func TestMetricsConfig(t *testing.T) {
	if got := mustParse(t, ca).Metrics; got != (Metrics{}) {
		t.Errorf("no [metrics]: %+v, want no listener and the default interval", got)
	}
	got := mustParse(t, ca+"[metrics]\nlisten = \"127.0.0.1:9464\"\nreadiness_interval = \"30s\"\n").Metrics
	if want := (Metrics{Listen: "127.0.0.1:9464", ReadinessInterval: 30 * time.Second}); got != want {
		t.Errorf("[metrics] = %+v, want %+v", got, want)
	}
	ex, err := Load("../examples/certfleet.toml")
	if err != nil {
		t.Fatal(err)
	}
	if ex.Metrics.Listen != "127.0.0.1:9464" {
		t.Errorf("example [metrics] listen = %q", ex.Metrics.Listen)
	}

	for _, tc := range []struct{ name, src, want string }{
		{"not an address", "[metrics]\nlisten = \"9464\"\n", `certfleet.toml:4: metrics.listen: "9464" is not a listen address`},
		{"the API's address", "[api]\nlisten = \"127.0.0.1:8555\"\n[metrics]\nlisten = \"127.0.0.1:8555\"\n",
			`certfleet.toml:6: metrics.listen: "127.0.0.1:8555" is also [api]'s address`},
		{"bad interval", "[metrics]\nreadiness_interval = \"often\"\n", `certfleet.toml:4: metrics.readiness_interval: invalid duration "often"`},
		{"short interval", "[metrics]\nreadiness_interval = \"10ms\"\n", `certfleet.toml:4: metrics.readiness_interval: "10ms" is too short`},
		{"unknown key", "[metrics]\npath = \"/m\"\n", `certfleet.toml:4: metrics.path: unknown key path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := mustProblems(t, ca+tc.src)
			if len(problems) != 1 || !strings.HasPrefix(problems[0].String(), tc.want) {
				t.Errorf("problems = %v, want one starting %q", problems, tc.want)
			}
		})
	}
}

// TestStagingHasNoMetricsListener: test mode does not bind production's
// [metrics] listen (it would collide with production's serve, or, with
// production stopped, feed staging's certificates to production's
// Prometheus); its metrics stay on [staging] api_listen, with a token.
func TestStagingHasNoMetricsListener(t *testing.T) {
	cfg := mustParse(t, ca+`
[metrics]
listen = "127.0.0.1:9464"
[[certificate]]
identifiers = ["www.example.com"]
`)
	st, err := cfg.StagingConfig()
	if err != nil {
		t.Fatal(err)
	}
	if st.Metrics.Listen != "" {
		t.Errorf("staging [metrics] listen = %q, want none", st.Metrics.Listen)
	}
	if cfg.Metrics.Listen != "127.0.0.1:9464" {
		t.Errorf("StagingConfig changed production's [metrics] listen: %q", cfg.Metrics.Listen)
	}
}
