package lego_test

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/solver/dns01/lego"
)

// TestSchema: the adapter builds every type package config accepts, reads
// no key config does not define, and docs/dns01.md documents every key.
func TestSchema(t *testing.T) {
	types := config.LegoDNSProviderTypes()
	if got := slices.Sorted(slices.Values(lego.Types())); !slices.Equal(got, types) {
		t.Fatalf("adapter types %v, config types %v", got, types)
	}
	doc, err := os.ReadFile("../../../docs/dns01.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range types {
		schema := map[string]bool{}
		all := map[string]string{}
		for _, k := range config.DNSProviderKeys(typ) {
			schema[k.Name] = true
			all[k.Name] = "x"
		}
		read, _ := lego.KeysRead(typ, all)
		for k := range read {
			if !schema[k] {
				t.Errorf("%s: the adapter reads key %q, which config does not define", typ, k)
			}
		}
		row := ""
		for line := range strings.SplitSeq(string(doc), "\n") {
			if strings.HasPrefix(line, "| `"+typ+"` |") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("docs/dns01.md has no table row for %s", typ)
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(schema)) {
			if k != "ttl" && k != "timeout" && !strings.Contains(row, "`"+k+"`") {
				t.Errorf("docs/dns01.md does not document %s's key %s", typ, k)
			}
		}
	}
}
