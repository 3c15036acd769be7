package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/sqlite"
)

// TestMain doubles as the certfleet binary: with CERTFLEET_TEST_MAIN set, the
// test executable runs Run with its arguments, so tests can start (and kill)
// certfleet as a real separate process.
func TestMain(m *testing.M) {
	if os.Getenv("CERTFLEET_TEST_MAIN") == "1" {
		ctx, stop := signalContext()
		code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}

func signalContext() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// runCLI runs certfleet in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	code = Run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDemoOnce(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, "demo", "--once", "--dir", dir)
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"4 issued, 0 failed", "live/web/{cert,chain,fullchain,privkey}.pem", "live/shop/rsa/", "openssl verify"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	roots := x509.NewCertPool()
	rootsPEM, err := os.ReadFile(filepath.Join(dir, "test-ca-roots.pem"))
	if err != nil || !roots.AppendCertsFromPEM(rootsPEM) {
		t.Fatalf("test-ca-roots.pem: %v", err)
	}
	for _, tc := range []struct {
		dir   string
		name  string
		ktype certfleet.KeyType
	}{
		{"live/web", "demo.certfleet.test", certfleet.ECDSAP256},
		{"live/mail", "mail.certfleet.test", certfleet.RSA2048},
		{"live/shop/ecdsa", "api.shop.certfleet.test", certfleet.ECDSAP256},
		{"live/shop/rsa", "www.shop.certfleet.test", certfleet.RSA2048},
	} {
		p := filepath.Join(dir, tc.dir)
		full, err := os.ReadFile(filepath.Join(p, "fullchain.pem"))
		if err != nil {
			t.Fatal(err)
		}
		chain, err := certfleet.ParseChain(full)
		if err != nil || len(chain) < 2 {
			t.Fatalf("%s: fullchain has %d certificates (%v)", tc.dir, len(chain), err)
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: tc.name, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("%s: does not verify for %s: %v", tc.dir, tc.name, err)
		}
		if kt, _ := certfleet.KeyTypeOf(chain[0].PublicKey); kt != tc.ktype {
			t.Errorf("%s: key type %s, want %s", tc.dir, kt, tc.ktype)
		}
		fi, err := os.Stat(filepath.Join(p, "privkey.pem"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s/privkey.pem: mode %v (%v), want 0600", tc.dir, fi.Mode().Perm(), err)
		}
	}
	// status reads the same store and shows every certificate as valid.
	code, out, errOut = runCLI(t, "status", "-config", filepath.Join(dir, "certfleet.toml"))
	if code != 0 || strings.Count(out, " valid ") != 4 {
		t.Fatalf("status exit %d:\n%s%s", code, out, errOut)
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := runCLI(t, c.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: certfleet "+c.name) {
			t.Errorf("%s --help: exit %d, output %q", c.name, code, out)
		}
	}
	if code, _, errOut := runCLI(t, "nope"); code != 2 || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
}

func TestBadConfigs(t *testing.T) {
	const ca = "[ca]\ndirectory = \"https://ca.example/dir\"\n"
	tests := []struct {
		name string
		toml string
		want []string // each must appear in stderr
	}{
		{
			name: "wildcard with http-01",
			toml: ca + "[[certificate]]\nname = \"w\"\nidentifiers = [\"*.example.org\"]\nchallenge = \"http-01\"\n",
			want: []string{"certfleet.toml:5:", "identifiers", "dns-01"},
		},
		{
			name: "unknown key type",
			toml: ca + "[[certificate]]\nidentifiers = [\"a.example.org\"]\nkey_types = [\"ed25519\"]\n",
			want: []string{"certfleet.toml:5:", "key_types", `unknown key type "ed25519"`},
		},
		{
			name: "unknown field",
			toml: ca + "[[certificate]]\nidentifiers = [\"a.example.org\"]\nkeytype = \"rsa2048\"\n",
			want: []string{"certfleet.toml:5:", "keytype"},
		},
		{
			name: "invalid name",
			toml: ca + "[[certificate]]\nidentifiers = [\"exa mple.org\"]\n",
			want: []string{"certfleet.toml:4:", "exa mple.org"},
		},
		{
			name: "duplicate identifier",
			toml: ca + "[[certificate]]\nidentifiers = [\"a.example.org\", \"A.example.org.\"]\n",
			want: []string{"certfleet.toml:4:", "same name"},
		},
		{
			name: "too many identifiers",
			toml: ca + "[[certificate]]\nidentifiers = [" + manyNames(101) + "]\n",
			want: []string{"certfleet.toml:4:", "at most 100"},
		},
		{
			name: "syntax error",
			toml: ca + "[[certificate]\n",
			want: []string{"certfleet.toml:3"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "certfleet.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := runCLI(t, "issue", "-config", path)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (configuration error); stderr:\n%s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), "certfleet.db")); err == nil {
				t.Error("a store was created for an invalid configuration")
			}
		})
	}
}

func manyNames(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "\"n%d.example.org\"", i)
	}
	return b.String()
}

func TestIssueReportsFailureWithExitCode(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	webroot := t.TempDir() // served by nobody: validation fails for real
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[[certificate]]
name = "good"
identifiers = ["good.certfleet.test"]
[[certificate]]
name = "bad"
identifiers = ["bad.certfleet.test"]
challenge = "webroot"
webroot = %q
`, webroot))
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "issued   good") || !strings.Contains(out, "FAILED   bad") || !strings.Contains(out, "bad.certfleet.test") {
		t.Fatalf("output does not say which certificate failed and why:\n%s", out)
	}
	// status shows the failure.
	_, out, _ = runCLI(t, "status", "-config", path)
	if !strings.Contains(out, "failing (1)") {
		t.Fatalf("status does not show the failure:\n%s", out)
	}
}

// TestKill9ResumesWithoutSecondOrder kills a real certfleet process with
// SIGKILL after its orders are placed and before they complete, restarts it,
// and checks that every certificate is issued exactly once, from the orders
// placed before the kill.
func TestKill9ResumesWithoutSecondOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	// Slow validation (0-3 s) so the kill lands while orders are pending.
	// Pebble reads this when the CA starts.
	t.Setenv("PEBBLE_VA_NOSLEEP", "0")
	t.Setenv("PEBBLE_VA_SLEEPTIME", "3")
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	const n = 6
	var certs strings.Builder
	for i := range n {
		fmt.Fprintf(&certs, "[[certificate]]\nname = \"c%d\"\nidentifiers = [\"c%d.certfleet.test\"]\n", i, i)
	}
	path := daemontest.WriteConfig(t, dir, ca, port, certs.String())
	// The http-01 responder that the CA reaches is not the child's: it is
	// another "instance" reading tokens from the same store, as behind a
	// load balancer, so it keeps answering while the child is dead. (With
	// the child's own responder, a validation landing in the gap between
	// kill and restart fails, and a new order is the right response.)
	text, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(text), fmt.Sprintf("listen = \"127.0.0.1:%d\"", port), `listen = ""`, 1)), 0o600)
	statePath := filepath.Join(dir, "state.db")
	shared, err := sqlite.Open(t.Context(), statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(t.Context())
	defer rcancel()
	go (&http01.Responder{Store: shared}).Serve(rctx, ln)

	child := exec.Command(os.Args[0], "issue", "-config", path)
	child.Env = append(os.Environ(), "CERTFLEET_TEST_MAIN=1")
	var childOut bytes.Buffer
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until every job has its order recorded, then kill -9.
	deadline := time.Now().Add(time.Minute)
	for {
		if pending, issued := countPending(t, statePath); pending+issued == n && pending > 0 {
			break
		} else if pending+issued == n && issued == n {
			t.Fatalf("all certificates were issued before the kill; slow validation did not take effect")
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatalf("orders never all placed; child output:\n%s", childOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	ordersBefore := ca.NewOrders()
	if ordersBefore != n {
		t.Fatalf("CA saw %d orders before the kill, want %d", ordersBefore, n)
	}

	// Restart: one more pass resumes the orders.
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 0 {
		t.Fatalf("restart exit %d\n%s\n%s\nfirst run:\n%s", code, out, errOut, childOut.String())
	}
	if got := ca.NewOrders(); got != n {
		t.Fatalf("CA saw %d new orders in all; the restart must resume, not re-order (want %d)", got, n)
	}
	if got := ca.Finalizations(); got != n {
		t.Fatalf("CA finalized %d orders, want %d (one certificate per name)", got, n)
	}
	st, err := sqlite.Open(t.Context(), statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		all, err := st.Issuances(t.Context(), certfleet.IssuanceFilter{Spec: fmt.Sprintf("c%d", i)})
		if err != nil || len(all) != 1 {
			t.Errorf("c%d: %d issuances (%v), want exactly 1", i, len(all), err)
		}
		if _, err := os.Stat(filepath.Join(dir, "live", fmt.Sprintf("c%d", i), "fullchain.pem")); err != nil {
			t.Errorf("c%d: files not written after the restart: %v", i, err)
		}
	}
}

// countPending reads the store (as another process would) and counts jobs
// with an order in flight and jobs with a certificate.
func countPending(t *testing.T, path string) (pending, issued int) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return 0, 0
	}
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		return 0, 0 // the child may be creating the schema
	}
	defer st.Close()
	jobs, err := st.Jobs(t.Context(), certfleet.JobFilter{})
	if err != nil {
		return 0, 0
	}
	for _, j := range jobs {
		if j.CurrentID != 0 {
			issued++
		} else if j.PendingOrderURL != "" {
			pending++
		}
	}
	return pending, issued
}

// TestWebrootAndCommands issues through webroot, with an existing web server
// (a plain file server) serving the web root on the port the CA validates,
// and checks the post-issue command runs once with its environment, and not
// again when nothing changed.
func TestWebrootAndCommands(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	webroot := t.TempDir()
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Handler: http.FileServer(http.Dir(webroot))}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	dir := t.TempDir()
	log := filepath.Join(dir, "hook.log")
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[[certificate]]
name = "site"
identifiers = ["site.certfleet.test", "www.site.certfleet.test"]
key_types = ["rsa2048"]
challenge = "webroot"
webroot = %q
commands = [["sh", "-c", "echo \"$CERTFLEET_CERTIFICATE $CERTFLEET_KEY_TYPE $CERTFLEET_NAMES $CERTFLEET_FULLCHAIN_PATH\" >> %s"]]
`, webroot, log))
	// The built-in responder must not be the one answering.
	cfgText, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(cfgText), fmt.Sprintf("listen = \"127.0.0.1:%d\"", port), `listen = ""`, 1)), 0o600)

	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue exit %d\n%s\n%s", code, out, errOut)
	}
	hook, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("post-issue command did not run: %v", err)
	}
	want := fmt.Sprintf("site rsa2048 site.certfleet.test www.site.certfleet.test %s\n", filepath.Join(dir, "live", "site", "fullchain.pem"))
	if string(hook) != want {
		t.Fatalf("command saw %q, want %q", hook, want)
	}
	// Token files are removed after validation.
	if left, _ := filepath.Glob(filepath.Join(webroot, ".well-known", "acme-challenge", "*")); len(left) != 0 {
		t.Errorf("token files left in the web root: %v", left)
	}
	// A second pass: nothing due, nothing rewritten, no command.
	before, _ := os.Stat(filepath.Join(dir, "live", "site", "cert.pem"))
	if code, out, _ := runCLI(t, "issue", "-config", path); code != 0 || !strings.Contains(out, "nothing due") {
		t.Fatalf("second pass exit %d: %s", code, out)
	}
	after, _ := os.Stat(filepath.Join(dir, "live", "site", "cert.pem"))
	if hook2, _ := os.ReadFile(log); string(hook2) != want || !before.ModTime().Equal(after.ModTime()) {
		t.Fatalf("second pass rewrote files or ran the command again: %q", hook2)
	}
}

// TestCrashSafety200 runs `certfleet issue` for 200 certificates as a real
// process, kills it with SIGKILL at random points, restarts it, and repeats
// until a run completes. Every certificate must end issued exactly once (one
// archived issuance, one finalized order at the CA), with no order, lease or
// file left half-done.
func TestCrashSafety200(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	const n = 200
	var certs strings.Builder
	for i := range n {
		fmt.Fprintf(&certs, "[[certificate]]\nname = \"c%d\"\nidentifiers = [\"c%d.certfleet.test\"]\n", i, i)
	}
	path := daemontest.WriteConfig(t, dir, ca, port, certs.String())
	// Quieter logs for 200 certificates; 8 in flight keeps Pebble (which
	// wedges under bursts near 16) healthy while killed clients abandon
	// requests.
	text, _ := os.ReadFile(path)
	text = []byte(strings.Replace(string(text), "level = \"debug\"", "level = \"warn\"", 1))
	text = []byte(strings.Replace(string(text), "[tlsalpn01]", "[renewal]\nconcurrency = 8\n[tlsalpn01]", 1))
	os.WriteFile(path, text, 0o600)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	kills := 0
	for round := 0; ; round++ {
		if round > 20 {
			t.Fatalf("no run completed in 20 rounds")
		}
		child := exec.Command(os.Args[0], "issue", "-config", path)
		child.Env = append(os.Environ(), "CERTFLEET_TEST_MAIN=1")
		var out bytes.Buffer
		child.Stdout, child.Stderr = &out, &out
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- child.Wait() }()
		// The first rounds are killed at a random moment; later ones may finish.
		var kill <-chan time.Time
		if round < 6 {
			kill = time.After(time.Duration(100+rng.IntN(1500)) * time.Millisecond)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("round %d: certfleet issue failed: %v\n%s", round, err, out.String())
			}
			t.Logf("round %d completed after %d kills", round, kills)
		case <-time.After(3 * time.Minute):
			// A full pass takes seconds; a stuck one is worth a clear
			// failure, not a test binary timing out. Pebble's own
			// counters tell whether the CA stopped answering.
			child.Process.Signal(syscall.SIGKILL)
			<-exited
			t.Fatalf("round %d made no progress in 3 minutes (CA: %d POSTs, %d orders, %d finalized)\n%s",
				round, ca.Posts(), ca.NewOrders(), ca.Finalizations(), lastLines(out.String(), 40))
		case <-kill:
			child.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
			continue
		}
		break
	}
	if kills == 0 {
		t.Fatal("no run was killed; the test proved nothing")
	}
	if got := ca.Finalizations(); got != n {
		t.Errorf("CA finalized %d orders for %d certificates (after %d kills); want exactly one each", got, n, kills)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jobs, err := st.Jobs(t.Context(), certfleet.JobFilter{})
	if err != nil || len(jobs) != n {
		t.Fatalf("%d jobs (%v), want %d", len(jobs), err, n)
	}
	for _, j := range jobs {
		all, err := st.Issuances(t.Context(), certfleet.IssuanceFilter{Spec: j.Spec})
		if err != nil || len(all) != 1 || all[0].ID != j.CurrentID {
			t.Errorf("%s: %d issuances (%v), current %d; want exactly one, current", j.Spec, len(all), err, j.CurrentID)
		}
		if j.PendingOrderURL != "" || j.LeaseOwner != "" || j.Failures != 0 {
			t.Errorf("%s: left pending order %q, lease %q, failures %d", j.Spec, j.PendingOrderURL, j.LeaseOwner, j.Failures)
		}
		chain, err := os.ReadFile(filepath.Join(dir, "live", j.Spec, "fullchain.pem"))
		if err != nil || len(all) == 1 && !bytes.Equal(chain, all[0].ChainPEM) {
			t.Errorf("%s: fullchain.pem missing or not the archived certificate (%v)", j.Spec, err)
		}
	}
	t.Logf("%d kills; CA orders placed %d, finalized %d", kills, ca.NewOrders(), ca.Finalizations())
}

// TestEndpointVerification: one TLS server serves the current certificate,
// another the one it replaced; `status -endpoints` says which is which and
// exits 1.
func TestEndpointVerification(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	fresh, stale := issuetest.Listen(t), issuetest.Listen(t)
	eps := fmt.Sprintf("endpoints = [%q, %q]\n", fresh.Addr().String(), "tls://"+stale.Addr().String())
	path := daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\"]\n"+eps)
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: %d\n%s\n%s", code, out, errOut)
	}
	live := filepath.Join(dir, "live", "web")
	old, err := tls.LoadX509KeyPair(filepath.Join(live, "fullchain.pem"), filepath.Join(live, "privkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// A second name re-issues the certificate.
	path = daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\", \"www.certfleet.test\"]\n"+eps)
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 || !strings.Contains(out, "issued") {
		t.Fatalf("re-issue: %d\n%s\n%s", code, out, errOut)
	}
	cur, err := tls.LoadX509KeyPair(filepath.Join(live, "fullchain.pem"), filepath.Join(live, "privkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	serveTLS(t, fresh, cur)
	serveTLS(t, stale, old)

	code, out, errOut := runCLI(t, "status", "-config", path, "-endpoints")
	if code != 1 {
		t.Fatalf("status -endpoints exit %d, want 1 (one endpoint is stale)\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	var freshLine, staleLine string
	for _, l := range lines {
		if strings.Contains(l, fresh.Addr().String()) {
			freshLine = l
		}
		if strings.Contains(l, stale.Addr().String()) {
			staleLine = l
		}
	}
	if !strings.Contains(freshLine, " ok ") {
		t.Errorf("endpoint with the current certificate: %q, want ok", freshLine)
	}
	if !strings.Contains(staleLine, "STALE") {
		t.Errorf("endpoint with the replaced certificate: %q, want STALE", staleLine)
	}
}

// serveTLS completes TLS handshakes on ln with cert until the test ends.
func serveTLS(t *testing.T, ln net.Listener, cert tls.Certificate) {
	t.Helper()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				tc.Handshake()
			}()
		}
	}()
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
