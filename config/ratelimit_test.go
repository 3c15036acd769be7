package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRateLimitsExample(t *testing.T) {
	cfg, err := Load("../examples/certfleet.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]RateLimits{"https://acme-v02.api.letsencrypt.org/directory": {
		NewOrdersPerAccount:      &RateLimit{300, 3 * time.Hour},
		CertificatesPerDomain:    &RateLimit{50, 7 * 24 * time.Hour},
		CertificatesPerNameSet:   &RateLimit{5, 7 * 24 * time.Hour},
		FailedValidationsPerName: &RateLimit{5, time.Hour},
	}}
	if !reflect.DeepEqual(cfg.RateLimits, want) {
		t.Errorf("RateLimits = %+v, want %+v", cfg.RateLimits, want)
	}
}

func TestRateLimitsParse(t *testing.T) {
	cfg := mustParse(t, ca+`
[rate_limits."https://ca.internal:9000/acme/acme/directory"]
certificates_per_domain = "50/7d"
new_orders_per_account = "none"
[rate_limits.letsencrypt-staging]
failed_validations_per_name = " 3 / 30m "
`)
	got := cfg.RateLimits["https://ca.internal:9000/acme/acme/directory"]
	if got.CertificatesPerDomain == nil || *got.CertificatesPerDomain != (RateLimit{50, 7 * 24 * time.Hour}) ||
		got.NewOrdersPerAccount == nil || *got.NewOrdersPerAccount != (RateLimit{}) ||
		got.CertificatesPerNameSet != nil || got.FailedValidationsPerName != nil {
		t.Errorf("step-ca limits = %+v", got)
	}
	st := cfg.RateLimits["https://acme-staging-v02.api.letsencrypt.org/directory"]
	if st.FailedValidationsPerName == nil || *st.FailedValidationsPerName != (RateLimit{3, 30 * time.Minute}) {
		t.Errorf("staging limits = %+v", st)
	}
	if cfg := mustParse(t, ca); cfg.RateLimits != nil {
		t.Errorf("no [rate_limits]: %+v, want nil (defaults)", cfg.RateLimits)
	}
}

func TestRateLimitsProblems(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`[rate_limits.letsencrypt]
certificates_per_domain = "50"`, `certfleet.toml:5: rate_limits.letsencrypt.certificates_per_domain: "50": write COUNT/WINDOW`},
		{`[rate_limits.letsencrypt]
certificates_per_domain = "0/7d"`, `certificates_per_domain: "0/7d": the count must be a whole number from 1`},
		{`[rate_limits.letsencrypt]
new_orders_per_account = "300/3x"`, `new_orders_per_account: "300/3x": invalid duration "3x"`},
		{`[rate_limits.letsencrypt]
new_orders_per_account = "300/0s"`, `the window must be from 1s to 366d`},
		{`[rate_limits.letsencrypt]
new_orders = "300/3h"`, `unknown key new_orders; the keys here are new_orders_per_account`},
		{`[rate_limits."http://ca.test/dir"]
new_orders_per_account = "300/3h"`, `is neither an https:// URL nor a known CA`},
		{`[rate_limits.letsencrypt]
certificates_per_domain = "50/7d"
[rate_limits."https://acme-v02.api.letsencrypt.org/directory"]
certificates_per_domain = "50/7d"`, `already given`},
		{`[rate_limits]
letsencrypt = "50/7d"`, `must be a table`},
	} {
		problems := mustProblems(t, ca+"\n"+tc.src)
		if len(problems) != 1 || !strings.Contains(problems[0].String(), tc.want) {
			t.Errorf("%s:\n got %v\nwant one problem containing %q", tc.src, problems, tc.want)
		}
	}
}
