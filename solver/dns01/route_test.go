package dns01_test

import (
	"testing"

	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/exec"
)

// TestProviderForRoute: Routes first (the config file's certificates),
// then Route (an inventory source's, which change while the solver runs),
// then DefaultProvider.
func TestProviderForRoute(t *testing.T) {
	s := &dns01.Solver{
		Providers:       map[string]dns01.Provider{"a": &exec.Provider{}, "b": &exec.Provider{}, "def": &exec.Provider{}},
		Routes:          map[string]string{"config.example.org": "a"},
		DefaultProvider: "def",
		Route: func(d string) string {
			if d == "inventory.example.org" || d == "config.example.org" {
				return "b"
			}
			return ""
		},
	}
	for domain, want := range map[string]string{
		"config.example.org":      "a",
		"inventory.example.org":   "b",
		"*.inventory.example.org": "b",
		"other.example.org":       "def",
	} {
		if got, _, err := s.ProviderFor(domain); err != nil || got != want {
			t.Errorf("ProviderFor(%s) = %q, %v; want %q", domain, got, err, want)
		}
	}
}
