package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestCopyTargets is issue #4 §4.1: copy targets are written with their
// content and mode, the combined file is key then fullchain, a [defaults]
// copy expands {name}, a store-only certificate's copies run its commands,
// and a pass with nothing new rewrites nothing and runs nothing.
func TestCopyTargets(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	haproxy := filepath.Join(dir, "haproxy")
	log := filepath.Join(dir, "hook.log")
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`copy = [{ path = %q, content = "fullchain" }]

[[certificate]]
name = "www"
identifiers = ["www.certfleet.test"]
copy = [{ path = %q, content = "combined", mode = "0640" },
        { path = %q, content = "fullchain" },
        { path = %q, content = "chain", mode = "0600" }]
commands = [["sh", "-c", "echo \"www $(cat %s | wc -c)\" >> %s"]]

[[certificate]]
name = "mail"
identifiers = ["mail.certfleet.test"]
output_dir = ""
commands = [["sh", "-c", "echo \"mail $CERTFLEET_COPY_PATHS\" >> %s"]]
`, filepath.Join(dir, "all", "{name}.crt"),
		filepath.Join(haproxy, "www.pem"), filepath.Join(dir, "nginx", "www.crt"), filepath.Join(dir, "nginx", "www-chain.crt"),
		filepath.Join(haproxy, "www.pem"), log, log))

	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue exit %d\n%s\n%s", code, out, errOut)
	}
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	live := filepath.Join(dir, "live", "www")
	key, full, chain := read(filepath.Join(live, "privkey.pem")), read(filepath.Join(live, "fullchain.pem")), read(filepath.Join(live, "chain.pem"))
	combined := filepath.Join(haproxy, "www.pem")
	if got := read(combined); !bytes.Equal(got, append(append([]byte(nil), key...), full...)) {
		t.Errorf("combined file is not key + fullchain:\n%s", got)
	}
	for _, tc := range []struct {
		path string
		want []byte
		mode os.FileMode
	}{
		{combined, nil, 0o640},
		{filepath.Join(dir, "nginx", "www.crt"), full, 0o644},
		{filepath.Join(dir, "nginx", "www-chain.crt"), chain, 0o600},
		// The [defaults] copy applies to mail only: www has its own list.
		{filepath.Join(dir, "all", "mail.crt"), nil, 0o644},
	} {
		if tc.want != nil && !bytes.Equal(read(tc.path), tc.want) {
			t.Errorf("%s: wrong content", tc.path)
		}
		if m := mode(tc.path); m != tc.mode {
			t.Errorf("%s: mode %#o, want %#o", tc.path, m, tc.mode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "all", "www.crt")); !os.IsNotExist(err) {
		t.Errorf("www got the [defaults] copy although it has its own: %v", err)
	}
	if !strings.HasPrefix(string(read(filepath.Join(dir, "all", "mail.crt"))), "-----BEGIN CERTIFICATE-----") {
		t.Error("mail's fullchain copy is not a certificate")
	}
	// The command ran after the copy was written: it saw the combined file.
	wantLog := fmt.Sprintf("www %d\nmail %s\n", len(key)+len(full), filepath.Join(dir, "all", "mail.crt"))
	if got := string(read(log)); !sameLines(got, wantLog) {
		t.Errorf("commands logged %q, want (in any order) %q", got, wantLog)
	}

	before, _ := os.Stat(combined)
	if code, out, _ := runCLI(t, "issue", "-config", path); code != 0 || !strings.Contains(out, "nothing due") {
		t.Fatalf("second pass exit %d: %s", code, out)
	}
	after, _ := os.Stat(combined)
	if !before.ModTime().Equal(after.ModTime()) || !sameLines(string(read(log)), wantLog) {
		t.Errorf("a pass with nothing new rewrote a copy or ran a command: %q", read(log))
	}

	// A copy deleted by hand is restored at the next start, and the
	// commands run because of it.
	os.Remove(combined)
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("third pass exit %d: %s\n%s", code, out, errOut)
	}
	if got := read(combined); !bytes.Equal(got, append(append([]byte(nil), key...), full...)) {
		t.Error("the deleted combined copy was not restored")
	}
	if got := string(read(log)); !strings.HasSuffix(got, fmt.Sprintf("www %d\n", len(key)+len(full))) || strings.Count(got, "www") != 2 {
		t.Errorf("restoring a copy did not run the command once: %q", got)
	}
	// So is a store-only certificate's copy, with its commands.
	os.Remove(filepath.Join(dir, "all", "mail.crt"))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("fourth pass exit %d: %s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "all", "mail.crt")); err != nil {
		t.Errorf("the deleted copy of the store-only certificate was not restored: %v", err)
	}
	if got := string(read(log)); strings.Count(got, "mail.crt\n") != 2 {
		t.Errorf("restoring mail's copy did not run its command once: %q", got)
	}
}

// sameLines reports whether a and b hold the same lines in any order.
func sameLines(a, b string) bool {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return false
	}
	count := make(map[string]int)
	for _, l := range la {
		count[l]++
	}
	for _, l := range lb {
		count[l]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestPrepareAndCleanup is issue #4 §4.3 end to end: prepare runs before
// the order and cleanup after it (both logged to one file, before the
// deploy command), with the certificate's name and identifiers in their
// environment; a failing prepare fails the certificate with the command's
// output, runs cleanup, and places no order.
func TestPrepareAndCleanup(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "events.log")
	// (That the order itself comes between prepare and cleanup is shown
	// with the CA's order count in manager's TestPrepareHook.)
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`prepare = [["sh", "-c", "echo \"prepare $CERTFLEET_CERTIFICATE $CERTFLEET_NAMES\" >> %[1]s"]]
cleanup = [["sh", "-c", "echo \"cleanup $CERTFLEET_CERTIFICATE\" >> %[1]s"]]

[[certificate]]
name = "ok"
identifiers = ["ok.certfleet.test", "www.ok.certfleet.test"]
commands = [["sh", "-c", "echo \"deploy $CERTFLEET_CERTIFICATE\" >> %[1]s"]]

[[certificate]]
name = "bad"
identifiers = ["bad.certfleet.test"]
prepare = [["sh", "-c", "echo \"prepare bad\" >> %[1]s; echo port 80 is closed >&2; exit 3"]]
`, log))

	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 1 {
		t.Fatalf("issue exit %d, want 1 (bad fails)\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "FAILED   bad") || !strings.Contains(out, "prepare bad before ordering") || !strings.Contains(out, "port 80 is closed") {
		t.Errorf("the failure does not show the prepare command's output:\n%s", out)
	}
	if n := ca.NewOrders(); n != 1 {
		t.Errorf("the CA saw %d orders, want 1 (ok's; none for bad)", n)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var okEvents, badEvents []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(l, " bad") {
			badEvents = append(badEvents, l)
		} else {
			okEvents = append(okEvents, l)
		}
	}
	if want := []string{"prepare ok ok.certfleet.test www.ok.certfleet.test", "cleanup ok", "deploy ok"}; strings.Join(okEvents, "|") != strings.Join(want, "|") {
		t.Errorf("ok's events %q, want %q", okEvents, want)
	}
	if want := []string{"prepare bad", "cleanup bad"}; strings.Join(badEvents, "|") != strings.Join(want, "|") {
		t.Errorf("bad's events %q, want %q", badEvents, want)
	}

	// A pass with nothing due runs no prepare, and still fails while bad
	// does (issue 15: cron sees a failure on every pass).
	os.Remove(log)
	if code, out, _ := runCLI(t, "issue", "-config", path); code != 1 || !strings.Contains(out, "nothing due") || !strings.Contains(out, "FAILING  bad") {
		t.Fatalf("second pass exit %d, want 1 naming bad:\n%s", code, out)
	}
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		b, _ := os.ReadFile(log)
		t.Errorf("a pass with nothing due ran commands: %q", b)
	}
}

// TestGlobalDeployCommands is issue #4 §4.2: the [deploy] commands run once
// per pass in which files changed, after all of them were written, with
// CERTFLEET_CHANGED naming the changed certificates; not at all in a pass
// that changed nothing.
func TestGlobalDeployCommands(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "global.log")
	// The command counts the fullchain files on disk when it runs: all
	// three must be there already.
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[[certificate]]
name = "a"
identifiers = ["a.certfleet.test"]
[[certificate]]
name = "b"
identifiers = ["b.certfleet.test"]
[[certificate]]
name = "c"
identifiers = ["c.certfleet.test"]
output_dir = ""
copy = [{ path = "copies/c.pem", content = "fullchain" }]

[deploy]
commands = [["sh", "-c", "echo \"$CERTFLEET_CHANGED|$CERTFLEET_CERTIFICATE|$(ls %[2]s/live/*/fullchain.pem %[2]s/copies/*.pem | wc -l)\" >> %[1]s"]]
`, log, dir))
	run := func(want string) {
		t.Helper()
		code, out, errOut := runCLI(t, "issue", "-config", path)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("issue exit %d, want output with %q\n%s\n%s", code, want, out, errOut)
		}
	}
	lines := func() []string {
		t.Helper()
		b, err := os.ReadFile(log)
		if os.IsNotExist(err) {
			return nil
		} else if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}

	run("3 issued")
	got := lines()
	if len(got) != 1 {
		t.Fatalf("[deploy] commands ran %d times in one pass, want once: %q", len(got), got)
	}
	f := strings.Split(got[0], "|")
	names := strings.Fields(f[0])
	slices.Sort(names)
	if len(f) != 3 || !slices.Equal(names, []string{"a", "b", "c"}) || !slices.Contains(names, f[1]) || strings.TrimSpace(f[2]) != "3" {
		t.Fatalf("[deploy] command saw %q; want CERTFLEET_CHANGED a b c, one of them as CERTFLEET_CERTIFICATE, and all 3 files written", got[0])
	}

	run("nothing due")
	if got := lines(); len(got) != 1 {
		t.Fatalf("a pass that changed nothing ran the [deploy] commands: %q", got)
	}

	// Files restored by hand count as a change, for that certificate only.
	os.Remove(filepath.Join(dir, "live", "b", "fullchain.pem"))
	run("nothing due")
	if got := lines(); len(got) != 2 || got[1] != "b|b|3" {
		t.Fatalf("after restoring b's files: %q, want a second line \"b|b|3\"", got)
	}
}

// TestCopyContentsMatchConfig: copiesOf hands the config's content names
// to deploy unchanged, so each must be one deploy knows.
func TestCopyContentsMatchConfig(t *testing.T) {
	for cfg, dep := range map[string]string{
		config.CopyCombined: deploy.ContentCombined, config.CopyFullchain: deploy.ContentFullchain,
		config.CopyCert: deploy.ContentCert, config.CopyChain: deploy.ContentChain, config.CopyKey: deploy.ContentKey,
	} {
		if cfg != dep {
			t.Errorf("config content %q is %q in deploy", cfg, dep)
		}
		if (config.Copy{Content: cfg}).HasKey() != (deploy.Copy{Content: dep}).HasKey() {
			t.Errorf("content %q: config and deploy disagree on whether it holds the key", cfg)
		}
	}
}
