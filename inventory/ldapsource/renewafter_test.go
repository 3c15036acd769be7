package ldapsource_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/internal/slapdtest"
	"github.com/certfleet/certfleet/inventory/ldapsource"
)

// TestRenewAfterAttribute: an LDAP attribute mapped to renew_after
// (renewal by age, issue 16) sets it per entry, decoded by the config
// file's rules; a value that is not a duration is refused naming the
// entry's DN and the field.
func TestRenewAfterAttribute(t *testing.T) {
	srv := slapdtest.New(t)
	srv.Start()
	aged := srv.AddDomain("aged", "TRUE", "aged.example.test")
	bad := srv.AddDomain("bad", "TRUE", "bad.example.test")
	plain := srv.AddDomain("plain", "TRUE", "plain.example.test")
	srv.Modify(aged, func(r *ldap.ModifyRequest) { r.Add("description", []string{"60d"}) })
	srv.Modify(bad, func(r *ldap.ModifyRequest) { r.Add("description", []string{"in a while"}) })

	attrs := `{ identifiers = "associatedDomain", name = "dc", renew_after = "description" }`
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "certfleet.toml"), []byte(`state = "x.db"
[ca]
directory = "letsencrypt"
[inventory.dir]
type = "ldap"
url = "`+srv.URL+`"
base = "`+slapdtest.Domains+`"
attributes = `+attrs+`
`))
	if err != nil {
		t.Fatalf("a source mapping renew_after: %v", err)
	}
	inv, _ := cfg.InventorySource("dir")
	s := &ldapsource.Source{URL: srv.URL, BindDN: slapdtest.RootDN, Password: slapdtest.RootPW,
		Base: slapdtest.Domains, Filter: "(letsencrypt=TRUE)", Attributes: inv.LDAP.Attributes}
	got := make(map[string]string)
	for where, e := range mustRead(t, s) {
		c, _, err := cfg.InventoryEntry("dir", where, e.Fields)
		if err != nil {
			got[where] = "error: " + err.Error()
			continue
		}
		got[where] = c.Spec.RenewAfter.String()
	}
	want := map[string]string{
		aged:  (60 * 24 * time.Hour).String(),
		bad:   "error: " + bad + `: renew_after: invalid duration "in a while"`,
		plain: "0s",
	}
	for where, w := range want {
		if g := got[where]; !strings.HasPrefix(g, w) {
			t.Errorf("%s: got %q, want %q", where, g, w)
		}
	}
}
