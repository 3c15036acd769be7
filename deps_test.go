package certfleet_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// badDeps lists, per package, imports it must not have, each with the reason
// (the architecture of STYLE.md §2, enforced).
var badDeps = map[string]map[string]string{
	"github.com/certfleet/certfleet": {
		"net/http":                                       "the domain does no I/O; HTTP belongs to httpapi and acmeissuer",
		"database/sql":                                   "the domain does no I/O; storage belongs to sqlite/postgres",
		"modernc.org/sqlite":                             "storage driver: only the sqlite package uses it",
		"github.com/jackc/pgx/v5":                        "storage driver: only the postgres package uses it",
		"github.com/mholt/acmez/v3":                      "ACME belongs to acmeissuer",
		"github.com/mholt/acmez/v3/acme":                 "ACME belongs to acmeissuer",
		"github.com/letsencrypt/pebble/v2/wfe":           "the test CA is not part of the domain",
		"github.com/miekg/dns":                           "DNS belongs to the solvers",
		"os/exec":                                        "running programs belongs to process",
		"github.com/prometheus/client_golang/prometheus": "metrics belong to the metrics package",
	},
	"github.com/certfleet/certfleet/manager": {
		"github.com/certfleet/certfleet/sqlite":     "the scheduler talks to the root Store interface only",
		"github.com/certfleet/certfleet/acmeissuer": "the scheduler talks to the root Issuer interface only",
		"github.com/mholt/acmez/v3/acme":            "the scheduler talks to the root Issuer interface only",
		"database/sql":                              "the scheduler talks to the root Store interface only",
		"net/http":                                  "the scheduler does no HTTP",
	},
	"github.com/certfleet/certfleet/sqlstore": {
		"github.com/certfleet/certfleet/sqlite":   "the store logic is written once above the driver seam (sqlstore.DB); a driver never appears in it",
		"github.com/certfleet/certfleet/postgres": "the store logic is written once above the driver seam (sqlstore.DB); a driver never appears in it",
		"modernc.org/sqlite":                      "database drivers belong to the sqlite package, behind sqlstore.DB",
		"github.com/jackc/pgx/v5":                 "database drivers belong to the postgres package, behind sqlstore.DB",
		"github.com/jackc/pgx/v5/pgxpool":         "database drivers belong to the postgres package, behind sqlstore.DB",
		"database/sql":                            "the seam is sqlstore.DB; database/sql is the SQLite driver's business",
		"github.com/certfleet/certfleet/manager":  "the store does not know its callers",
		"github.com/certfleet/certfleet/httpapi":  "the store does not know its callers",
		"net/http":                                "the store serves nothing",
	},
	"github.com/certfleet/certfleet/sqlite": {
		"github.com/certfleet/certfleet/manager":    "adapters do not import each other",
		"github.com/certfleet/certfleet/acmeissuer": "adapters do not import each other",
		"net/http": "the store serves nothing",
	},
	"github.com/certfleet/certfleet/acmeissuer": {
		"github.com/certfleet/certfleet/sqlite":  "adapters do not import each other: accounts come through certfleet.AccountStore",
		"github.com/certfleet/certfleet/manager": "adapters do not import each other",
		"github.com/letsencrypt/pebble/v2/wfe":   "the test CA is for tests and the demo only",
	},
	"github.com/certfleet/certfleet/config": {
		"github.com/certfleet/certfleet/sqlite":     "config is pure parsing; cmd wires adapters",
		"github.com/certfleet/certfleet/acmeissuer": "config is pure parsing; cmd wires adapters",
		"net/http": "config is pure parsing",
		"github.com/certfleet/certfleet/solver/dns01/lego": "config owns the provider keys; cmd hands them to the adapter",
		"github.com/go-acme/lego/v5/challenge":             "lego and its SDKs stay behind solver/dns01/lego",
		"github.com/go-ldap/ldap/v3":                       "config only describes an LDAP source; inventory/ldapsource speaks LDAP",
		"github.com/jackc/pgx/v5":                          "config only describes a PostgreSQL source; inventory/pgsource connects",
	},
	"github.com/certfleet/certfleet/solver/dns01": {
		"github.com/go-acme/lego/v5/challenge": "lego writes records only, behind solver/dns01/lego; propagation, CNAMEs and the journal are ours",
	},
	"github.com/certfleet/certfleet/solver/dns01/lego": {
		"github.com/certfleet/certfleet/config": "the adapter takes plain settings (Settings.Keys); cmd maps the config",
	},
	"github.com/certfleet/certfleet/deploy": {
		"github.com/certfleet/certfleet/sqlite":  "adapters do not import each other",
		"github.com/certfleet/certfleet/manager": "adapters do not import each other",
		"net/http":                               "deploy writes files and runs commands; it fetches nothing",
		"github.com/certfleet/certfleet/config":  "deploy takes plain targets, copies and commands; the daemon maps the config onto them",
	},
	"github.com/certfleet/certfleet/solver/http01": {
		"github.com/certfleet/certfleet/sqlite":  "solvers reach the store through certfleet.ChallengeStore",
		"github.com/certfleet/certfleet/manager": "adapters do not import each other",
		"github.com/mholt/acmez/v3/acme":         "solvers get certfleet.Challenge, not acmez types",
	},
	"github.com/certfleet/certfleet/solver/tlsalpn01": {
		"github.com/certfleet/certfleet/sqlite":  "solvers reach the store through certfleet.ChallengeStore",
		"github.com/certfleet/certfleet/manager": "adapters do not import each other",
		"github.com/mholt/acmez/v3/acme":         "solvers get certfleet.Challenge, not acmez types",
	},
	"github.com/certfleet/certfleet/httpapi": {
		"github.com/certfleet/certfleet/sqlite":     "the API reaches the store through root interfaces (httpapi.Store)",
		"github.com/certfleet/certfleet/postgres":   "the API reaches the store through root interfaces (httpapi.Store)",
		"github.com/certfleet/certfleet/manager":    "the API wakes the scheduler through a func, not its type",
		"github.com/certfleet/certfleet/acmeissuer": "revocation goes through certfleet.Revoker",
	},
	"github.com/certfleet/certfleet/postgres": {
		"github.com/certfleet/certfleet/sqlite":  "adapters do not import each other",
		"github.com/certfleet/certfleet/manager": "adapters do not import each other",
		"net/http":                               "the store serves nothing",
	},
	"github.com/certfleet/certfleet/agent": {
		"github.com/certfleet/certfleet/sqlite":     "the agent talks to the server over httpapi.Client only",
		"github.com/certfleet/certfleet/postgres":   "the agent talks to the server over httpapi.Client only",
		"github.com/certfleet/certfleet/manager":    "the agent talks to the server over httpapi.Client only",
		"github.com/certfleet/certfleet/acmeissuer": "the agent never speaks ACME; the server does",
	},
	"github.com/certfleet/certfleet/seal": {
		"database/sql":                            "pure crypto; stores implement seal.DEKStore",
		"net/http":                                "pure crypto; a KMS wrapper would live in its own package",
		"github.com/certfleet/certfleet/sqlite":   "pure crypto; stores implement seal.DEKStore",
		"github.com/certfleet/certfleet/postgres": "pure crypto; stores implement seal.DEKStore",
	},
	"github.com/certfleet/certfleet/endpoint": {
		"net/http":                               "endpoint checks connect and read certificates; they serve and fetch nothing",
		"github.com/certfleet/certfleet/sqlite":  "adapters do not import each other",
		"github.com/certfleet/certfleet/manager": "adapters do not import each other",
	},
	"github.com/certfleet/certfleet/dashboard": {
		"github.com/certfleet/certfleet/sqlite":     "the dashboard reads the store through root interfaces (dashboard.Store)",
		"github.com/certfleet/certfleet/postgres":   "the dashboard reads the store through root interfaces (dashboard.Store)",
		"github.com/certfleet/certfleet/manager":    "the dashboard wakes the scheduler through a func, not its type",
		"github.com/certfleet/certfleet/httpapi":    "adapters do not import each other: cmd mounts the dashboard beside the API",
		"github.com/certfleet/certfleet/acmeissuer": "a retry only makes jobs due; the scheduler orders",
	},
	"github.com/certfleet/certfleet/alert": {
		"github.com/certfleet/certfleet/sqlite":     "alerts reach the store through certfleet.Store (IncidentStore)",
		"github.com/certfleet/certfleet/postgres":   "alerts reach the store through certfleet.Store (IncidentStore)",
		"github.com/certfleet/certfleet/manager":    "alerts are woken through certfleet.EventSink, not the scheduler's type",
		"github.com/certfleet/certfleet/acmeissuer": "alerts never speak ACME",
		"github.com/certfleet/certfleet/endpoint":   "endpoint checks come through alert.EndpointSource",
		"github.com/certfleet/certfleet/config":     "cmd maps the config onto alert's types",
	},
	"github.com/certfleet/certfleet/metrics": {
		"github.com/certfleet/certfleet/sqlite":     "metrics read the store through certfleet.StatsStore and FleetStore",
		"github.com/certfleet/certfleet/postgres":   "metrics read the store through certfleet.StatsStore and FleetStore",
		"github.com/certfleet/certfleet/manager":    "events arrive through certfleet.EventSink",
		"github.com/certfleet/certfleet/acmeissuer": "ACME observations arrive through methods matching acmeissuer.Observer",
		"github.com/certfleet/certfleet/httpapi":    "cmd mounts the handler; the API's authentication is the API's",
	},
	"github.com/certfleet/certfleet/solver/webroot": {
		"github.com/certfleet/certfleet/sqlite": "solvers reach the store through certfleet.ChallengeStore",
		"net/http":                              "webroot only writes files; the web server is someone else's",
	},
	"github.com/certfleet/certfleet/ratelimit": {
		"github.com/certfleet/certfleet/sqlite":     "budgets reach the store through certfleet.RateLimitStore",
		"github.com/certfleet/certfleet/postgres":   "budgets reach the store through certfleet.RateLimitStore",
		"github.com/certfleet/certfleet/manager":    "the manager consults a certfleet.Budget, not this package",
		"github.com/certfleet/certfleet/acmeissuer": "failures are read through root interfaces (certfleet.FailedIdentifier)",
		"database/sql": "budgets reach the store through certfleet.RateLimitStore",
	},
	"github.com/certfleet/certfleet/staging": {
		"github.com/certfleet/certfleet/sqlite":   "test mode is derived from the configuration alone; nothing is opened",
		"github.com/certfleet/certfleet/postgres": "test mode is derived from the configuration alone; nothing is opened",
		"net/http": "test mode is derived from the configuration alone; nothing is fetched",
	},
	"github.com/certfleet/certfleet/preflight": {
		"github.com/certfleet/certfleet/sqlite":     "the check gets its solvers from the caller; it opens no store",
		"github.com/certfleet/certfleet/postgres":   "the check gets its solvers from the caller; it opens no store",
		"github.com/certfleet/certfleet/acmeissuer": "the check never contacts the CA",
		"github.com/certfleet/certfleet/manager":    "the check orders nothing",
		"github.com/certfleet/certfleet/httpapi":    "the check serves nothing; http-01 tokens go through the solver",
	},
	"github.com/certfleet/certfleet/daemon": {
		"flag": "flags are cmd's; a daemon is built from a *config.Config and Options",
		"github.com/certfleet/certfleet/internal/pebbleca":   "the test CA is for tests and the demo; a daemon talks to the configured CA",
		"github.com/certfleet/certfleet/internal/daemontest": "test helpers are imported from _test.go files only",
		"github.com/certfleet/certfleet/internal/cutproxy":   "test helpers are imported from _test.go files only",
		"github.com/certfleet/certfleet/internal/issuetest":  "test helpers are imported from _test.go files only",
		"github.com/certfleet/certfleet/internal/porttest":   "test helpers are imported from _test.go files only",
		"github.com/certfleet/certfleet/preflight":           "certfleet check needs no daemon, and a daemon does not run it",
	},
	"github.com/certfleet/certfleet/status": {
		"github.com/certfleet/certfleet/sqlite":     "status reads through root interfaces",
		"github.com/certfleet/certfleet/postgres":   "status reads through root interfaces",
		"github.com/certfleet/certfleet/acmeissuer": "status prints; it contacts no CA",
		"github.com/certfleet/certfleet/httpapi":    "status prints text; the machine-readable views are the API's",
		"github.com/certfleet/certfleet/daemon":     "status is handed what the daemon computed; it assembles nothing",
	},
	"github.com/certfleet/certfleet/inventory": {
		"github.com/certfleet/certfleet/sqlite":   "the reconciler reaches the store through inventory.Store",
		"github.com/certfleet/certfleet/postgres": "the reconciler reaches the store through inventory.Store",
		"github.com/jackc/pgx/v5":                 "each kind of source is its own package (inventory/pgsource)",
		"github.com/go-ldap/ldap/v3":              "each kind of source is its own package (inventory/ldapsource)",
		"github.com/certfleet/certfleet/manager":  "the scheduler is woken through Reconciler.Changed, not its type",
		"github.com/certfleet/certfleet/daemon":   "the daemon wires the reconcilers, not the other way round",
	},
	"github.com/certfleet/certfleet/inventory/pgsource": {
		"github.com/certfleet/certfleet/postgres": "the operator's table is not certfleet's store; the source only reads it",
		"github.com/certfleet/certfleet/sqlite":   "a source reads its inventory; the reconciler writes the store",
		"github.com/go-ldap/ldap/v3":              "sources do not import each other",
	},
	"github.com/certfleet/certfleet/inventory/ldapsource": {
		"github.com/certfleet/certfleet/sqlite":   "a source reads its inventory; the reconciler writes the store",
		"github.com/certfleet/certfleet/postgres": "a source reads its inventory; the reconciler writes the store",
		"github.com/jackc/pgx/v5":                 "sources do not import each other",
	},
	"github.com/certfleet/certfleet/inventory/dirsource": {
		"github.com/certfleet/certfleet/sqlite":   "a source reads its inventory; the reconciler writes the store",
		"github.com/certfleet/certfleet/postgres": "a source reads its inventory; the reconciler writes the store",
		"net/http": "a directory source reads local files",
	},
	"github.com/certfleet/certfleet/hook": {
		"github.com/certfleet/certfleet/sqlite":     "hooks reach the store through certfleet.DeliveryStore",
		"github.com/certfleet/certfleet/postgres":   "hooks reach the store through certfleet.DeliveryStore",
		"github.com/certfleet/certfleet/manager":    "events arrive through certfleet.EventSink, not the scheduler's type",
		"github.com/certfleet/certfleet/alert":      "expiry notifications become events in the daemon; hooks know only certfleet.Event",
		"github.com/certfleet/certfleet/config":     "the daemon maps [events] onto hook's types",
		"github.com/certfleet/certfleet/acmeissuer": "hooks never speak ACME",
	},
	"github.com/certfleet/certfleet/export": {
		"github.com/certfleet/certfleet/sqlite":   "the export reads the store through its small Store interface",
		"github.com/certfleet/certfleet/postgres": "the export reads the store through its small Store interface",
		"github.com/certfleet/certfleet/config":   "the daemon maps [export] onto export's types",
		"github.com/certfleet/certfleet/deploy":   "the export writes an inventory tree, not the certificates' output directories",
		"net/http":                                "the export writes files; Ansible pushes them",
		"os/exec":                                 "the vault format is implemented here; ansible-vault is for tests only",
	},
	"github.com/certfleet/certfleet/compromise": {
		"github.com/certfleet/certfleet/daemon":     "the playbook acts through Playbook's fields; cmd wires them from a daemon",
		"github.com/certfleet/certfleet/httpapi":    "the playbook serves nothing; agents' reports come from the store",
		"github.com/certfleet/certfleet/sqlite":     "the playbook reads the store through certfleet.Store",
		"github.com/certfleet/certfleet/postgres":   "the playbook reads the store through certfleet.Store",
		"github.com/certfleet/certfleet/acmeissuer": "revocations go through compromise.Revoker",
	},
}

func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for pkg, bad := range badDeps {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, exitStderr(err))
		}
		for _, dep := range strings.Fields(string(out)) {
			if why, ok := bad[dep]; ok {
				t.Errorf("%s imports %s: %s", pkg, dep, why)
			}
		}
	}
}

// TestNothingImportsCmd: the binaries under cmd/ wire the packages
// together; no package depends on one (a program is not importable, and
// the application lives in daemon so that it is).
func TestNothingImportsCmd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, exitStderr(err))
	}
	const cmd = "github.com/certfleet/certfleet/cmd/"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, cmd) && !strings.HasPrefix(pkg, cmd) {
				t.Errorf("%s imports %s: packages below cmd never import it", pkg, imp)
			}
		}
	}
}

// TestPackageDocs checks that every package has exactly one package doc
// comment ("// Package x ...").
func TestPackageDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, exitStderr(err))
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath, Name, Doc, Dir string
			GoFiles                    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(p.GoFiles) == 0 {
			continue
		}
		if p.Doc == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
			continue
		}
		n := 0
		for _, f := range p.GoFiles {
			src, err := readFile(p.Dir + "/" + f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(src, "\n// Package "+p.Name+" ") || strings.HasPrefix(src, "// Package "+p.Name+" ") {
				n++
			}
		}
		if p.Name == "main" {
			continue // "// Command x" style is fine for main
		}
		if n != 1 {
			t.Errorf("%s has %d package doc comments, want exactly 1", p.ImportPath, n)
		}
	}
}
