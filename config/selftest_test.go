package config

import (
	"strings"
	"testing"
	"time"
)

// TestParseSelfTest (issue 14): self-tests are on by default, with or
// without a [self_test] table; enabled = false turns them off, and
// self_test = false turns them off for one certificate.
func TestParseSelfTest(t *testing.T) {
	const base = "[ca]\ndirectory = \"https://ca.test/dir\"\n[[certificate]]\nname = \"a\"\nidentifiers = [\"a.example.org\"]\n"
	for _, tc := range []struct {
		name, src string
		enabled   bool
	}{
		{"no table", "", true},
		{"empty table", "[self_test]\n", true},
		{"enabled", "[self_test]\nenabled = true\n", true},
		{"turned off", "[self_test]\nenabled = false\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, base+tc.src)
			if cfg.SelfTest.Enabled != tc.enabled {
				t.Errorf("Enabled = %v, want %v", cfg.SelfTest.Enabled, tc.enabled)
			}
		})
	}
	cfg := mustParse(t, "[ca]\ndirectory = \"https://ca.test/dir\"\n[[certificate]]\nname = \"a\"\nidentifiers = [\"a.example.org\"]\nself_test = false\n"+
		"[self_test]\nresolvers = [\"127.0.0.1:5353\"]\nretest_min = \"1s\"\nretest_max = \"2s\"\n")
	if c, _ := cfg.Certificate("a"); !cfg.SelfTest.Enabled || !c.Spec.NoSelfTest {
		t.Errorf("enabled %v, certificate a's NoSelfTest %v; want on, and off for a", cfg.SelfTest.Enabled, c.Spec.NoSelfTest)
	}
	if st := cfg.SelfTest; strings.Join(st.Resolvers, ",") != "127.0.0.1:5353" || st.RetestMin != time.Second || st.RetestMax != 2*time.Second {
		t.Errorf("parsed %+v", st)
	}
}
