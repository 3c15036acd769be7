package daemon_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/daemontest"
)

// alive reports whether pid is a running process (not a zombie).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust kill
	}
	i := bytes.LastIndexByte(b, ')')
	return !(i >= 0 && i+2 < len(b) && b[i+2] == 'Z')
}

// waitFile waits up to a minute for path to hold something, and returns it.
func waitFile(t *testing.T, path string, why func() string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared; %s", path, why())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustPID(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(waitFile(t, path, func() string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func helperRecords(t *testing.T, stateDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(stateDir, "helpers", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	// A port of the ephemeral range that nothing listens on can still
	// "answer": the kernel may pick the same port as the dial's source,
	// and TCP's simultaneous open connects the socket to itself.
	return c.LocalAddr().String() != c.RemoteAddr().String()
}

// tomlArgv renders an argv as a TOML array.
func tomlArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// TestPrepareHelperForwards is issue 20 end to end: the port the CA dials
// for http-01 has nothing on it but the forwarder a prepare helper starts
// (to certfleet's responder on another port), ready once a URL answers
// through it; the name is validated and issued, and the forwarder is gone
// afterwards, its record too.
func TestPrepareHelperForwards(t *testing.T) {
	ca, caPort := daemontest.StartCA(t)
	respPort := daemontest.FreePort(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "forwarder.pid")
	fwd := daemontest.SelfCommand(t, daemontest.ForwarderRole, "-listen", fmt.Sprintf("127.0.0.1:%d", caPort),
		"-to", fmt.Sprintf("127.0.0.1:%d", respPort), "-pidfile", pidFile)
	path := daemontest.WriteConfig(t, dir, ca, respPort, fmt.Sprintf(`
[[certificate]]
name = "fwd"
identifiers = ["fwd.certfleet.test"]
prepare_helpers = [{ command = %s, ready_url = "http://127.0.0.1:%d/.well-known/acme-challenge/probe" }]
`, tomlArgv(fwd), caPort))
	d := daemontest.OpenDaemon(t, path, nil)
	if portOpen(caPort) {
		t.Fatal("something answers on the CA's http-01 port before the helper runs")
	}
	rep, err := d.IssueOnce(t.Context())
	if err != nil || rep.Issued != 1 {
		t.Fatalf("IssueOnce: %+v, %v; want fwd issued through the forwarder", rep.Results, err)
	}
	if pid := mustPID(t, pidFile); alive(pid) {
		t.Errorf("the forwarder (pid %d) still runs after the issuance", pid)
	}
	if portOpen(caPort) {
		t.Error("the CA's http-01 port still answers after the issuance")
	}
	if r := helperRecords(t, dir); len(r) != 0 {
		t.Errorf("helper records left: %v", r)
	}
}

// TestPrepareHelperValidationFails: the forwarder leads the CA to a server
// with the wrong answer; the order fails, and the forwarder is stopped all
// the same.
func TestPrepareHelperValidationFails(t *testing.T) {
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	ca, caPort := daemontest.StartCA(t)
	respPort := daemontest.FreePort(t)
	var asked atomic.Int32
	wrong := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.NotFound(w, r)
	}))
	defer wrong.Close()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "forwarder.pid")
	fwd := daemontest.SelfCommand(t, daemontest.ForwarderRole, "-listen", fmt.Sprintf("127.0.0.1:%d", caPort),
		"-to", strings.TrimPrefix(wrong.URL, "http://"), "-pidfile", pidFile)
	path := daemontest.WriteConfig(t, dir, ca, respPort, fmt.Sprintf(`
[[certificate]]
name = "fwd"
identifiers = ["fwd.certfleet.test"]
prepare_helpers = [{ command = %s, ready_line = "^forwarding " }]
`, tomlArgv(fwd)))
	d := daemontest.OpenDaemon(t, path, nil)
	rep, err := d.IssueOnce(t.Context())
	if err != nil || rep.Failed != 1 || rep.Issued != 0 {
		t.Fatalf("IssueOnce: %+v, %v; want fwd failed", rep.Results, err)
	}
	if asked.Load() == 0 {
		t.Error("the CA's validation never went through the forwarder")
	}
	if pid := mustPID(t, pidFile); alive(pid) {
		t.Errorf("the forwarder (pid %d) still runs after the failed order", pid)
	}
	if r := helperRecords(t, dir); len(r) != 0 {
		t.Errorf("helper records left: %v", r)
	}
}

// TestPrepareHelperLeftByKilledCertfleet: certfleet, a process of its own,
// is killed with SIGKILL while the CA validates through the forwarder its
// prepare helper (a shell, as a helper script is) started; the forwarder
// outlives it, and the next start of certfleet stops it before anything
// else.
func TestPrepareHelperLeftByKilledCertfleet(t *testing.T) {
	ca, caPort := daemontest.StartCA(t)
	respPort := daemontest.FreePort(t)
	dir := t.TempDir()
	pidFile, connected := filepath.Join(dir, "forwarder.pid"), filepath.Join(dir, "connected")
	fwd := daemontest.SelfCommand(t, daemontest.ForwarderRole, "-listen", fmt.Sprintf("127.0.0.1:%d", caPort),
		"-hold", connected, "-pidfile", pidFile)
	helper := append([]string{"sh", "-c", `"$0" "$@" & wait`}, fwd...)
	path := daemontest.WriteConfig(t, dir, ca, respPort, fmt.Sprintf(`
[[certificate]]
name = "fwd"
identifiers = ["fwd.certfleet.test"]
prepare_helpers = [{ command = %s, ready_tcp = "127.0.0.1:%d" }]
`, tomlArgv(helper), caPort))

	var stderr daemontest.SyncBuffer
	argv := daemontest.SelfCommand(t, daemontest.IssueRole, path)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFile(t, connected, func() string { return "certfleet said:\n" + stderr.String() })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	pid := mustPID(t, pidFile)
	if !alive(pid) {
		t.Fatal("the forwarder died with certfleet: this test shows nothing")
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if r := helperRecords(t, dir); len(r) != 1 {
		t.Fatalf("helper records after the kill: %v, want 1", r)
	}

	daemontest.OpenDaemon(t, path, nil) // the next start
	if alive(pid) {
		t.Errorf("the forwarder (pid %d) a killed certfleet left still runs after the next start", pid)
	}
	if r := helperRecords(t, dir); len(r) != 0 {
		t.Errorf("helper records left: %v", r)
	}
	if portOpen(caPort) {
		t.Error("the CA's http-01 port still answers after the next start")
	}
}
