package dirsource_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/inventory/dirsource"
)

// TestRenewAfterInFile: a team's file sets renew_after (renewal by age,
// issue 16) per certificate, decoded by the config file's rules; a value
// that is not a duration is refused naming the file, the line and the
// field, and the file's other certificates stay valid.
func TestRenewAfterInFile(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "conf.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "team.toml"), `[[certificate]]
name = "aged"
identifiers = ["aged.example.org"]
renew_after = "60d"

[[certificate]]
name = "bad"
identifiers = ["bad.example.org"]
renew_after = "every now and then"

[[certificate]]
name = "plain"
identifiers = ["plain.example.org"]
`)
	cfg, err := config.Parse(filepath.Join(root, "certfleet.toml"), []byte(`state = "x.db"
[ca]
directory = "letsencrypt"
[inventory.teams]
type = "directory"
dir = "conf.d"
`))
	if err != nil {
		t.Fatal(err)
	}
	es, err := (&dirsource.Source{Dir: dir}).Read(t.Context())
	if err != nil || len(es) != 1 {
		t.Fatalf("Read = %v, %v", es, err)
	}
	certs, invalid, err := cfg.InventoryFile("teams", es[0].Where, es[0].File)
	got := make(map[string]time.Duration)
	for _, c := range certs {
		got[c.Spec.Name] = c.Spec.RenewAfter
	}
	if got["aged"] != 60*24*time.Hour || len(got) != 2 {
		t.Errorf("certificates' renew_after = %v, want aged 1440h and plain 0", got)
	}
	if len(invalid) != 1 || invalid[0] != "bad" {
		t.Errorf("invalid = %v, want bad", invalid)
	}
	want := "team.toml:9: certificate[1].renew_after: invalid duration \"every now and then\""
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want one containing %q", err, want)
	}
}
