package pgsource_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/inventory/pgsource"
)

const renewConfig = `state = "x.db"
[ca]
directory = "letsencrypt"
[inventory.shop]
type = "postgres"
dsn = "postgres://certfleet@127.0.0.1/shop"
query = "SELECT 1"
`

// TestRenewAfterColumn: a row sets renew_after (renewal by age, issue 16)
// as an interval or as text, decoded by the config file's rules; a value
// that is not a duration is refused naming the row and the field.
func TestRenewAfterColumn(t *testing.T) {
	dsn, conn := newDB(t, channel())
	exec(t, conn, `ALTER TABLE customer_domains ADD COLUMN age interval, ADD COLUMN age_text text`)
	exec(t, conn, `INSERT INTO customer_domains (domain, age, age_text) VALUES
		('a.example.test', '60 days', '60d'),
		('b.example.test', '36 hours', 'soon'),
		('c.example.test', '1 month', '12h')`)
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "certfleet.toml"), []byte(renewConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"age", "age_text"} {
		s := &pgsource.Source{DSN: dsn, Query: `SELECT id, domain AS name, ARRAY[domain] AS identifiers, ` + col +
			` AS renew_after FROM customer_domains ORDER BY id`}
		es, err := s.Read(t.Context())
		if err != nil {
			t.Fatalf("%s: Read: %v", col, err)
		}
		got := make(map[string]string)
		for _, e := range es {
			c, _, err := cfg.InventoryEntry("shop", e.Where, e.Fields)
			if err != nil {
				got[e.Where] = "error: " + err.Error()
				continue
			}
			got[e.Where] = c.Spec.RenewAfter.String()
		}
		want := map[string]map[string]string{
			"age": {
				"row id=1": (60 * 24 * time.Hour).String(),
				"row id=2": (36 * time.Hour).String(),
				// Months are not a fixed length: refused.
				"row id=3": "error: row id=3: renew_after: must be a string",
			},
			"age_text": {
				"row id=1": (60 * 24 * time.Hour).String(),
				"row id=2": `error: row id=2: renew_after: invalid duration "soon"`,
				"row id=3": (12 * time.Hour).String(),
			},
		}[col]
		for where, w := range want {
			if g := got[where]; !strings.HasPrefix(g, w) {
				t.Errorf("%s, %s: got %q, want %q", col, where, g, w)
			}
		}
	}
}
