// Command inventorybench measures the inventory sources for BENCHMARKS.md
// (issue 18): reconciling 100,000 rows of a PostgreSQL table and 10,000
// entries of an LDAP directory (Debian's slapd) into a SQLite store, next
// to references in the same run: the same certificates through the config
// file's path (parse the file, SyncSpecs, one audit event each, as daemon
// Open does) and through SyncSpecs directly. Each measurement runs in its
// own child process, so its peak resident memory is its own.
//
//	go run ./internal/cmd/inventorybench -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//
// It needs /usr/sbin/slapd (.ci/install-slapd.sh) for the LDAP part and a
// PostgreSQL server for the table; the table lives in a new schema, dropped
// afterwards. It also times `certfleet inventory diff` over the table, the
// command an operator runs before switching a source on.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/internal/benchdb"
	"github.com/certfleet/certfleet/inventory"
	"github.com/certfleet/certfleet/inventory/ldapsource"
	"github.com/certfleet/certfleet/inventory/pgsource"
	"github.com/certfleet/certfleet/sqlite"
)

// result is one measured step of a child.
type result struct {
	Step     string        `json:"step"`
	N        int           `json:"n"`
	Wall     time.Duration `json:"wall"`
	CPU      time.Duration `json:"cpu"`
	AllocMB  float64       `json:"alloc_mb"` // Go heap allocated during the step
	Note     string        `json:"note,omitempty"`
	MaxRSSKB int64         `json:"maxrss_kb"` // the child's peak, filled in by the parent
}

func main() {
	mode := flag.String("mode", "", "internal: the measurement a child runs")
	dsn := flag.String("dsn", os.Getenv("CERTFLEET_TEST_POSTGRES"), "PostgreSQL server DSN (default $CERTFLEET_TEST_POSTGRES)")
	rows := flag.Int("rows", 100000, "rows in the table")
	entries := flag.Int("entries", 10000, "entries in the LDAP directory")
	dir := flag.String("dir", "", "internal: the scratch directory")
	flag.Parse()
	if *mode != "" {
		res, err := child(*mode, *dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "inventorybench %s: %v\n", *mode, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	if err := run(*dsn, *rows, *entries); err != nil {
		fmt.Fprintf(os.Stderr, "inventorybench: %v\n", err)
		os.Exit(1)
	}
}

func run(dsn string, rows, entries int) error {
	if dsn == "" {
		return fmt.Errorf("give -dsn or set CERTFLEET_TEST_POSTGRES")
	}
	ctx := context.Background()
	scratch, err := os.MkdirTemp("", "inventorybench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)

	// The table, in a schema of its own.
	schemaDSN, drop, err := tableSchema(ctx, dsn, rows)
	if err != nil {
		return err
	}
	defer drop()
	if err := os.WriteFile(filepath.Join(scratch, "rows"), []byte(strconv.Itoa(rows)), 0o600); err != nil {
		return err
	}
	// The directory, loaded with slapadd before slapd starts.
	ldapURL, stop, err := startSlapd(scratch, entries)
	if err != nil {
		return err
	}
	defer stop()
	// The config: both sources, and a second file holding the table's
	// certificates as [[certificate]] tables (the reference).
	cfg := fmt.Sprintf(`state = "state.db"
[ca]
directory = "https://ca.invalid/directory"
[defaults]
output_dir = ""
[inventory.customers]
type = "postgres"
dsn = %q
query = "SELECT id, domain AS name, ARRAY[domain, 'www.' || domain] AS identifiers FROM customer_domains"
[inventory.ldap-main]
type = "ldap"
url = %q
bind_dn = %q
password = %q
base = %q
filter = "(letsencrypt=TRUE)"
attributes = { identifiers = "associatedDomain", name = "dc" }
`, schemaDSN, ldapURL, rootDN, rootPW, domains)
	if err := os.WriteFile(filepath.Join(scratch, "certfleet.toml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	var ref strings.Builder
	ref.WriteString("state = \"state.db\"\n[ca]\ndirectory = \"https://ca.invalid/directory\"\n[defaults]\noutput_dir = \"\"\n")
	for i := range rows {
		d := domain(i)
		fmt.Fprintf(&ref, "[[certificate]]\nname = %q\nidentifiers = [%q, %q]\n", d, d, "www."+d)
	}
	if err := os.WriteFile(filepath.Join(scratch, "reference.toml"), []byte(ref.String()), 0o600); err != nil {
		return err
	}
	bin := filepath.Join(scratch, "certfleet")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/certfleet").CombinedOutput(); err != nil {
		return fmt.Errorf("build certfleet: %v\n%s", err, out)
	}

	fmt.Printf("%d rows (PostgreSQL table), %d LDAP entries (slapd), into SQLite; each line a child process or a step of one\n\n", rows, entries)
	fmt.Printf("%-44s %8s %9s %9s %10s %9s  %s\n", "step", "n", "wall", "CPU", "Go alloc", "peak RSS", "")
	for _, mode := range []string{"table", "config", "syncspecs", "ldap", "ldap-syncspecs"} {
		rs, err := runChild(scratch, mode)
		if err != nil {
			return err
		}
		for _, r := range rs {
			fmt.Printf("%-44s %8d %9s %9s %8.0fMB %7.1fMB  %s\n", r.Step, r.N, r.Wall.Round(time.Millisecond), r.CPU.Round(time.Millisecond), r.AllocMB, float64(r.MaxRSSKB)/1024, r.Note)
		}
	}
	// The command, over the table, against an empty store.
	cmd := exec.Command(bin, "inventory", "diff", "-config", filepath.Join(scratch, "certfleet.toml"), "customers")
	cmd.Dir = scratch
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("certfleet inventory diff: %v", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	last := strings.TrimSpace(string(out))
	last = last[strings.LastIndexByte(last, '\n')+1:]
	fmt.Printf("%-44s %8d %9s %9s %10s %7.1fMB  %s\n", "certfleet inventory diff customers", rows, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), "", float64(ru.Maxrss)/1024, strings.TrimSpace(last))
	return nil
}

func runChild(scratch, mode string) ([]result, error) {
	dir := filepath.Join(scratch, mode)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-mode", mode, "-dir", dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", mode, err)
	}
	var rs []result
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", mode, err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	for i := range rs {
		rs[i].MaxRSSKB = ru.Maxrss
	}
	return rs, nil
}

func domain(i int) string { return fmt.Sprintf("host%06d.example.org", i) }

// measure runs fn and reports its wall time, CPU time and Go allocations.
func measure(step string, n int, fn func() (string, error)) (result, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	start := time.Now()
	note, err := fn()
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	return result{Step: step, N: n, Wall: wall, CPU: cpu, AllocMB: float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20), Note: note}, err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// child runs one measurement in dir, from the config files in dir's parent.
func child(mode, dir string) ([]result, error) {
	ctx := context.Background()
	scratch := filepath.Dir(dir)
	cfg, err := config.Load(filepath.Join(scratch, "certfleet.toml"))
	if err != nil {
		return nil, err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	reconciler := func(name string) (*inventory.Reconciler, error) {
		inv, _ := cfg.InventorySource(name)
		var src inventory.Source
		switch inv.Type {
		case config.InventoryTypePostgres:
			src = &pgsource.Source{DSN: inv.Postgres.DSN, Query: inv.Postgres.Query}
		case config.InventoryTypeLDAP:
			l := inv.LDAP
			src = &ldapsource.Source{URL: l.URL, BindDN: l.BindDN, Password: l.Password, Base: l.Base, Filter: l.Filter, Attributes: l.Attributes}
		}
		return &inventory.Reconciler{Name: name, Source: src, Store: st, Config: func() *config.Config { return cfg }, Events: st}, nil
	}
	pass := func(r *inventory.Reconciler) func() (string, error) {
		return func() (string, error) {
			p, err := r.Pass(ctx)
			return fmt.Sprintf("%d added, %d changed, %d unchanged, %d skipped", len(p.Add), len(p.Change), p.Unchanged, len(p.Problems)), err
		}
	}
	switch mode {
	case "table":
		r, _ := reconciler("customers")
		inv, _ := cfg.InventorySource("customers")
		var out []result
		first, err := measure("table: first pass (all rows new)", 0, pass(r))
		if err != nil {
			return nil, err
		}
		read, err := measure("table: the query alone (pgsource.Read)", 0, func() (string, error) {
			es, err := r.Source.Read(ctx)
			first.N = len(es)
			return "", err
		})
		read.N = first.N
		if err != nil {
			return nil, err
		}
		again, err := measure("table: next pass, nothing changed", first.N, pass(r))
		if err != nil {
			return nil, err
		}
		conn, err := pgx.Connect(ctx, inv.Postgres.DSN)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Exec(ctx, `UPDATE customer_domains SET domain = 'new-' || domain WHERE id % 100 = 0`); err != nil {
			return nil, err
		}
		conn.Close(ctx)
		changed, err := measure("table: next pass, 1% of rows renamed", first.N, pass(r))
		if err != nil {
			return nil, err
		}
		out = append(out, read, first, again, changed)
		return out, nil
	case "config":
		var n int
		res, err := measure("reference: config file (parse, SyncSpecs, events)", 0, func() (string, error) {
			ref, err := config.Load(filepath.Join(scratch, "reference.toml"))
			if err != nil {
				return "", err
			}
			n = len(ref.Certificates)
			return syncWithEvents(ctx, st, certfleet.SourceConfig, ref.Specs())
		})
		res.N = n
		return []result{res}, err
	case "syncspecs":
		specs, err := specsLike(cfg, "customers", countRows(scratch))
		if err != nil {
			return nil, err
		}
		res, err := measure("reference: SyncSpecs directly, with events", len(specs), func() (string, error) {
			return syncWithEvents(ctx, st, certfleet.SourceConfig, specs)
		})
		return []result{res}, err
	case "ldap":
		r, _ := reconciler("ldap-main")
		first, err := measure("ldap: first pass (all entries new)", 0, pass(r))
		if err != nil {
			return nil, err
		}
		read, err := measure("ldap: the search alone (ldapsource.Read)", 0, func() (string, error) {
			es, err := r.Source.Read(ctx)
			first.N = len(es)
			return "", err
		})
		read.N = first.N
		if err != nil {
			return nil, err
		}
		again, err := measure("ldap: next pass, nothing changed", first.N, pass(r))
		return []result{read, first, again}, err
	case "ldap-syncspecs":
		specs, err := specsLike(cfg, "ldap-main", countEntries(scratch))
		if err != nil {
			return nil, err
		}
		res, err := measure("reference: SyncSpecs directly, with events", len(specs), func() (string, error) {
			return syncWithEvents(ctx, st, certfleet.SourceConfig, specs)
		})
		return []result{res}, err
	}
	return nil, fmt.Errorf("unknown mode %q", mode)
}

// syncWithEvents is what daemon.Open does with a config file's
// certificates: SyncSpecs, then one config_changed event per certificate,
// here recorded in batches as the reconciler records them (daemon.Open
// records them one by one, which the benchmark does not copy: that would
// make the reference, not the source, the slow part).
func syncWithEvents(ctx context.Context, st *sqlite.Store, source string, specs []certfleet.CertificateSpec) (string, error) {
	res, err := st.SyncSpecs(ctx, source, specs)
	if err != nil {
		return "", err
	}
	events, detail := make([]certfleet.Event, len(res.Added)), res.String()
	for i, name := range res.Added {
		events[i] = certfleet.Event{Kind: certfleet.EventConfigChanged, Actor: "config:bench", Certificate: name, Reason: "added", Detail: detail}
	}
	return res.String(), st.RecordEvents(ctx, events)
}

// specsLike makes the specs the benchmark's rows or entries declare.
func specsLike(cfg *config.Config, source string, n int) ([]certfleet.CertificateSpec, error) {
	specs := make([]certfleet.CertificateSpec, 0, n)
	for i := range n {
		d := domain(i)
		name := d
		if source == "ldap-main" {
			name = fmt.Sprintf("host%06d", i)
		}
		c, _, err := cfg.InventoryEntry(source, "row", map[string]any{"name": name, "identifiers": []any{d, "www." + d}})
		if err != nil {
			return nil, err
		}
		specs = append(specs, c.Spec)
	}
	return specs, nil
}

func countRows(scratch string) int    { return readCount(filepath.Join(scratch, "rows")) }
func countEntries(scratch string) int { return readCount(filepath.Join(scratch, "entries")) }
func readCount(path string) int {
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// tableSchema makes a schema with customer_domains of n rows and returns
// a DSN that uses it.
func tableSchema(ctx context.Context, dsn string, n int) (string, func(), error) {
	schemaDSN, drop, err := benchdb.NewSchema(ctx, dsn, "inventorybench")
	if err != nil {
		return "", nil, err
	}
	conn, err := pgx.Connect(ctx, schemaDSN)
	if err != nil {
		drop()
		return "", nil, err
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		"CREATE TABLE customer_domains (id serial PRIMARY KEY, domain text NOT NULL)",
		fmt.Sprintf("INSERT INTO customer_domains (domain) SELECT 'host' || lpad((i - 1)::text, 6, '0') || '.example.org' FROM generate_series(1, %d) AS i", n),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			drop()
			return "", nil, fmt.Errorf("%s: %w", sql, err)
		}
	}
	return schemaDSN, drop, nil
}

const (
	suffix  = "dc=example,dc=test"
	rootDN  = "cn=admin," + suffix
	rootPW  = "bench-secret"
	domains = "ou=domains," + suffix
)

// startSlapd loads n entries with slapadd and starts slapd on a loopback
// port; the returned func stops it.
func startSlapd(scratch string, n int) (string, func(), error) {
	dir := filepath.Join(scratch, "slapd")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return "", nil, err
	}
	schema := `attributetype ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'letsencrypt' EQUALITY booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.99.2 NAME 'certfleetDomain' SUP top AUXILIARY MAY ( letsencrypt ) )
`
	if err := os.WriteFile(filepath.Join(dir, "certfleet.schema"), []byte(schema), 0o644); err != nil {
		return "", nil, err
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include %[1]s/certfleet.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
pidfile %[1]s/slapd.pid
sizelimit unlimited
database mdb
maxsize 4294967296
suffix %[2]q
rootdn %[3]q
rootpw %[4]s
directory %[1]s/data
index objectClass,letsencrypt eq
index entryCSN,entryUUID eq
overlay syncprov
`, dir, suffix, rootDN, rootPW)
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return "", nil, err
	}
	var ldif strings.Builder
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: bench\n\n", suffix)
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: organizationalUnit\nou: domains\n\n", domains)
	for i := range n {
		d := domain(i)
		fmt.Fprintf(&ldif, "dn: dc=host%06d,%s\nobjectClass: domain\nobjectClass: domainRelatedObject\nobjectClass: certfleetDomain\ndc: host%06d\nassociatedDomain: %s\nassociatedDomain: www.%s\nletsencrypt: TRUE\n\n", i, domains, i, d, d)
	}
	ldifPath := filepath.Join(dir, "entries.ldif")
	if err := os.WriteFile(ldifPath, []byte(ldif.String()), 0o600); err != nil {
		return "", nil, err
	}
	if out, err := exec.Command("/usr/sbin/slapadd", "-q", "-f", confPath, "-l", ldifPath).CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("slapadd: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	u := "ldap://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("/usr/sbin/slapd", "-d", "0", "-h", u+"/", "-f", confPath)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("slapd does not answer on %s", u)
		}
	}
	os.WriteFile(filepath.Join(scratch, "entries"), []byte(strconv.Itoa(n)), 0o600)
	return u, stop, nil
}
