package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
)

// TestAuditConfigChanges: the startup sync and a reload record one
// config_changed event per certificate added, changed or withdrawn, by
// config:FILE with the sync's summary; a reload that changes nothing
// records nothing.
func TestAuditConfigChanges(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "certfleet.toml")
	// webroot: a reload may not add http-01 without a running responder.
	head := fmt.Sprintf("state = \"certfleet.db\"\n[ca]\ndirectory = \"https://ca.invalid/dir\"\n[http01]\nlisten = \"\"\n"+
		"[defaults]\nchallenge = \"webroot\"\nwebroot = %q\n", t.TempDir())
	write := func(certs string) *config.Config {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(head+certs), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := "[[certificate]]\nname = \"a\"\nidentifiers = [\"a.example.org\"]\n"
	b := "[[certificate]]\nname = \"b\"\nidentifiers = [\"b.example.org\"]\n"
	d, err := daemon.Open(t.Context(), write(a+b), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// a changes its names, b goes, c comes.
	c := "[[certificate]]\nname = \"c\"\nidentifiers = [\"c.example.org\"]\n"
	if err := d.Reload(t.Context(), write(strings.Replace(a, "a.example.org\"", "a.example.org\", \"www.a.example.org\"", 1)+c)); err != nil {
		t.Fatal(err)
	}
	cur := d.CurrentConfig()
	if err := d.Reload(t.Context(), cur); err != nil { // unchanged
		t.Fatal(err)
	}
	evs, err := d.Store.Events(t.Context(), certfleet.EventFilter{Kind: certfleet.EventConfigChanged})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	abs, _ := filepath.Abs(cfgPath)
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s %s", e.Certificate, e.Reason))
		if e.Actor != "config:"+abs || e.Remote == "" {
			t.Errorf("event %+v: want actor config:%s and the host", e, abs)
		}
	}
	// Newest first; events of one sync share a time, so they list in
	// reverse order of recording: disabled, changed, added.
	want := []string{"b disabled", "a changed", "c added", "b added", "a added"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("config_changed events: %v, want %v", got, want)
	}
	if len(evs) > 0 && evs[0].Detail != "1 added, 1 changed, 1 disabled, 0 unchanged (c, a, b)" {
		t.Errorf("detail %q, want the sync summary", evs[0].Detail)
	}
}
