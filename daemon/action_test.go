package daemon_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/daemontest"
)

// checkScript is a [deploy] command that checks what a batch gives it
// itself (every file in CERTFLEET_CERTS is a certificate without a key,
// every file in CERTFLEET_KEYS holds a key, and the list file agrees with
// the variables) and writes what it saw.
const checkScript = `#!/bin/sh
out=$1
bad() { echo "BAD $*" >> "$out"; }
for f in $CERTFLEET_CERTS; do
  grep -q "BEGIN CERTIFICATE" "$f" || bad "no certificate in $f"
  grep -q "PRIVATE KEY" "$f" && bad "a private key in certificate file $f"
done
for f in $CERTFLEET_KEYS; do
  grep -q "PRIVATE KEY" "$f" || bad "no private key in $f"
done
list() { awk -F'\t' -v k="$1" '$1 == k && !seen[$3]++ { printf "%s%s", sep, $3; sep = " " }' "$CERTFLEET_CHANGED_FILE"; }
[ "$(list cert)" = "$CERTFLEET_CERTS" ] || bad "list file certs: $(list cert)"
[ "$(list key)" = "$CERTFLEET_KEYS" ] || bad "list file keys: $(list key)"
[ "$(list cn)" = "$CERTFLEET_DOMAINS_CN" ] || bad "list file cn: $(list cn)"
[ "$(list name)" = "$CERTFLEET_DOMAINS_ALL" ] || bad "list file names: $(list name)"
{
  echo "batch"
  echo "changed=$CERTFLEET_CHANGED"
  echo "cn=$CERTFLEET_DOMAINS_CN"
  echo "all=$CERTFLEET_DOMAINS_ALL"
  echo "certs=$CERTFLEET_CERTS"
  echo "keys=$CERTFLEET_KEYS"
  for f in $CERTFLEET_CERTS $CERTFLEET_KEYS; do echo "sum $f $(sha256sum < "$f" | cut -d' ' -f1)"; done
} >> "$out"
`

// TestBatchOfRenewals is issue 20's batch: three certificates renewed in
// one pass (one in the certbot layout, one with a SAN and a combined copy,
// one kept in the store with copies only) give the [deploy] command their
// names, first names, all names, certificate and key files and the list
// file, which the command checks itself; an action keyed on two of them
// runs once for those two, after the certificates' own commands and before
// the [deploy] commands, and not when only the third changed; the
// unmatched action runs for the identifiers no action names.
func TestBatchOfRenewals(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	order, seen, script := filepath.Join(dir, "order"), filepath.Join(dir, "seen"), filepath.Join(dir, "check.sh")
	if err := os.WriteFile(script, []byte(checkScript), 0o755); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "live")
	combined, threeFull, threeKey := filepath.Join(dir, "haproxy", "two.pem"), filepath.Join(dir, "three", "full.pem"), filepath.Join(dir, "three", "key.pem")
	own := fmt.Sprintf(`commands = [["sh", "-c", "echo \"own $CERTFLEET_CERTIFICATE\" >> %s"]]`, order)
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[[certificate]]
name = "one"
identifiers = ["one.certfleet.test"]
%[1]s

[[certificate]]
name = "two"
identifiers = ["two.certfleet.test", "www.two.certfleet.test"]
copy = [{ path = %[2]q, content = "combined" }]
%[1]s

[[certificate]]
name = "three"
identifiers = ["three.certfleet.test"]
output_dir = ""
copy = [{ path = %[3]q, content = "fullchain" }, { path = %[4]q, content = "key" }]
%[1]s

[deploy]
commands = [[%[5]q, %[6]q], ["sh", "-c", "echo deploy >> %[7]s"]]

[[deploy.action]]
name = "web"
identifiers = ["one.certfleet.test", "*.two.certfleet.test"]
commands = [["sh", "-c", "echo \"action $CERTFLEET_ACTION $CERTFLEET_CHANGED\" >> %[7]s"]]

[[deploy.action]]
name = "others"
unmatched = true
commands = [["sh", "-c", "echo \"action $CERTFLEET_ACTION $CERTFLEET_CHANGED\" >> %[7]s"]]
`, own, combined, threeFull, threeKey, script, seen, order))

	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, path, clk)
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 3 {
		t.Fatalf("first pass: %+v, %v", rep.Results, err)
	}
	first := map[string]string{}
	latest := daemontest.Current(t, d, "one").NotAfter
	for _, n := range []string{"one", "two", "three"} {
		iss := daemontest.Current(t, d, n)
		first[n] = iss.Serial
		if iss.NotAfter.After(latest) {
			latest = iss.NotAfter
		}
	}
	os.Remove(order)
	os.Remove(seen)

	// All three are due: one pass renews them, one batch.
	clk.Set(latest.Add(-time.Minute))
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 3 {
		t.Fatalf("renewal pass: %+v, %v", rep.Results, err)
	}
	for n, serial := range first {
		if daemontest.Current(t, d, n).Serial == serial {
			t.Fatalf("%s was not renewed", n)
		}
	}
	got := readLines(t, seen)
	for _, l := range got {
		if strings.HasPrefix(l, "BAD") {
			t.Errorf("the command found: %s", l)
		}
	}
	field := func(key string) []string {
		for _, l := range got {
			if v, ok := strings.CutPrefix(l, key+"="); ok {
				f := strings.Fields(v)
				slices.Sort(f) // the three were renewed concurrently
				return f
			}
		}
		t.Fatalf("the command did not see %s: %q", key, got)
		return nil
	}
	one, two := filepath.Join(live, "one"), filepath.Join(live, "two")
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"changed", []string{"one", "three", "two"}},
		{"cn", []string{"one.certfleet.test", "three.certfleet.test", "two.certfleet.test"}},
		{"all", []string{"one.certfleet.test", "three.certfleet.test", "two.certfleet.test", "www.two.certfleet.test"}},
		{"certs", sorted(filepath.Join(one, "cert.pem"), filepath.Join(one, "chain.pem"), filepath.Join(one, "fullchain.pem"),
			filepath.Join(two, "cert.pem"), filepath.Join(two, "chain.pem"), filepath.Join(two, "fullchain.pem"), threeFull)},
		{"keys", sorted(filepath.Join(one, "privkey.pem"), filepath.Join(two, "privkey.pem"), combined, threeKey)},
	} {
		if f := field(tc.key); !slices.Equal(f, tc.want) {
			t.Errorf("%s = %q, want %q", tc.key, f, tc.want)
		}
	}
	// The command ran once, on the files of the renewal.
	if n := strings.Count(strings.Join(got, "\n"), "batch"); n != 1 {
		t.Errorf("the [deploy] command ran %d times, want once", n)
	}
	for _, l := range got {
		if rest, ok := strings.CutPrefix(l, "sum "); ok {
			file, sum, _ := strings.Cut(rest, " ")
			b, err := os.ReadFile(file)
			if h := sha256.Sum256(b); err != nil || hex.EncodeToString(h[:]) != sum {
				t.Errorf("%s changed after the batch command ran (%v): it did not see the renewed files", file, err)
			}
		}
	}

	// Own commands first, then the actions (web for one and two only; the
	// unmatched one for two's apex name and three), then [deploy].
	lines := readLines(t, order)
	if len(lines) != 6 {
		t.Fatalf("order %q, want three own commands, two actions and deploy", lines)
	}
	if own := sorted(lines[:3]...); !slices.Equal(own, []string{"own one", "own three", "own two"}) {
		t.Errorf("first ran %q, want each certificate's own command", lines[:3])
	}
	if w := strings.Fields(lines[3]); len(w) != 4 || w[0] != "action" || w[1] != "web" || !slices.Equal(sorted(w[2:]...), []string{"one", "two"}) {
		t.Errorf("then %q, want the web action once for one and two", lines[3])
	}
	if w := strings.Fields(lines[4]); len(w) != 4 || w[1] != "others" || !slices.Equal(sorted(w[2:]...), []string{"three", "two"}) {
		t.Errorf("then %q, want the unmatched action once for two and three", lines[4])
	}
	if lines[5] != "deploy" {
		t.Errorf("last %q, want deploy", lines[5])
	}

	// Only three changes (its key copy deleted, restored at the next
	// pass): the web action does not run.
	os.Remove(order)
	os.Remove(threeKey)
	clk.Set(time.Now()) // the renewed certificates are not due
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 0 {
		t.Fatalf("third pass: %+v, %v", rep.Results, err)
	}
	if lines := readLines(t, order); !slices.Equal(lines, []string{"own three", "action others three", "deploy"}) {
		t.Errorf("with only three changed, ran %q", lines)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
