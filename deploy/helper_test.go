package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
)

// prepareRole is the first argument that makes the test binary a
// certfleet that starts a prepare helper and waits to be killed.
const prepareRole = "certfleet-deploy-test-prepare"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == prepareRole {
		prepareAndWait(os.Args[2], os.Args[3:])
		return
	}
	os.Exit(m.Run())
}

// prepareAndWait starts argv as the prepare helper of a certificate with
// its records in stateDir, says "prepared" and blocks until killed.
func prepareAndWait(stateDir string, argv []string) {
	w := &deploy.Writer{StateDir: stateDir}
	spec := testSpec(certfleet.ECDSAP256)
	_, err := w.Prepare(context.Background(), spec, deploy.Hooks{Helpers: []deploy.Helper{{Argv: argv, ReadyLine: regexp.MustCompile("^ready$")}}}, nil)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("prepared\n")
	select {}
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool { return syscall.Kill(pid, 0) == nil && !isZombie(pid) }

// waitGone waits until pid is no longer running, failing after 10 s.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) is still running", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readPID waits for a helper to write its pid to path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func records(t *testing.T, stateDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(stateDir, "helpers", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHelperRunsUntilDone is issue 20's long-running prepare: the helper
// is ready when its line appears, keeps running (recorded in the state
// directory) until the order ended, and is then stopped with the child it
// started, before the cleanup commands run; it sees the certificate's names.
func TestHelperRunsUntilDone(t *testing.T) {
	dir, stateDir := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "events")
	helper := []string{"sh", "-c", `echo "helper $CERTFLEET_CERTIFICATE $CERTFLEET_NAME|$CERTFLEET_NAMES" >> "$1"
sleep 60 & echo $! > "$2"
echo starting; echo ready; wait`, "sh", log, filepath.Join(dir, "child")}
	cleanup := []string{"sh", "-c", `echo cleanup >> "$1"`, "sh", log}
	var logs bytes.Buffer
	w := &deploy.Writer{StateDir: stateDir, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	done, err := w.Prepare(t.Context(), testSpec(certfleet.ECDSAP256), deploy.Hooks{
		Helpers: []deploy.Helper{{Argv: helper, ReadyLine: regexp.MustCompile(`^read[y]$`)}},
		Cleanup: [][]string{cleanup},
	}, nil)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	child := readPID(t, filepath.Join(dir, "child"))
	if !running(child) {
		t.Fatal("the helper's child is not running while the order would run")
	}
	if n := len(records(t, stateDir)); n != 1 {
		t.Errorf("%d helper records while it runs, want 1", n)
	}
	if b, _ := os.ReadFile(log); string(b) != "helper www example.org|example.org www.example.org\n" {
		t.Errorf("before done, events %q", b)
	}
	done()
	if running(child) {
		t.Error("the helper's child still runs after done returned")
	}
	if b, _ := os.ReadFile(log); !strings.HasSuffix(string(b), "\ncleanup\n") {
		t.Errorf("events %q, want cleanup after the helper", b)
	}
	if n := len(records(t, stateDir)); n != 0 {
		t.Errorf("%d helper records after it stopped, want 0", n)
	}
	if !strings.Contains(logs.String(), "how=SIGTERM") {
		t.Errorf("the helper was not stopped by SIGTERM:\n%s", logs.String())
	}
}

// TestHelperKilledAfterGrace: a helper that ignores SIGTERM (so does the
// child it started) is killed, with its child, after its grace period.
func TestHelperKilledAfterGrace(t *testing.T) {
	dir := t.TempDir()
	helper := []string{"sh", "-c", `trap "" TERM; sleep 60 & echo $! > "$1"; echo ready; wait; wait`, "sh", filepath.Join(dir, "child")}
	var logs bytes.Buffer
	w := &deploy.Writer{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	done, err := w.Prepare(t.Context(), testSpec(certfleet.ECDSAP256), deploy.Hooks{
		Helpers: []deploy.Helper{{Argv: helper, ReadyLine: regexp.MustCompile(`ready`), StopGrace: 200 * time.Millisecond}},
	}, nil)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	child := readPID(t, filepath.Join(dir, "child"))
	done()
	if running(child) {
		t.Error("the child that ignored SIGTERM still runs after done returned")
	}
	if !strings.Contains(logs.String(), `how="SIGKILL after 200ms"`) {
		t.Errorf("the helper was not killed after its grace:\n%s", logs.String())
	}
}

// TestHelperFailures: a helper that exits before it is ready, or is not
// ready in time, fails Prepare with why and its output; the helpers
// already started are stopped and the cleanup commands run.
func TestHelperFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		helper deploy.Helper
		want   []string
	}{{
		name:   "exits",
		helper: deploy.Helper{Argv: []string{"sh", "-c", "echo cannot bind port 80 >&2; exit 3"}, ReadyLine: regexp.MustCompile("ready")},
		want:   []string{"exited before it was ready", "exit status 3", "cannot bind port 80"},
	}, {
		name: "never ready",
		helper: deploy.Helper{Argv: []string{"sh", "-c", "echo connecting; exec sleep 60"}, ReadyTimeout: 300 * time.Millisecond,
			Ready:            func(context.Context, string) error { return errors.New("connection refused") },
			ReadyDescription: "connection to ready_tcp 127.0.0.1:9"},
		want: []string{"not ready after 300ms", "connection to ready_tcp 127.0.0.1:9 (last: connection refused)", "output: connecting"},
	}, {
		name: "no line",
		helper: deploy.Helper{Argv: []string{"sh", "-c", "echo connecting; exec sleep 60"}, ReadyTimeout: 300 * time.Millisecond,
			ReadyLine: regexp.MustCompile("^forwarding")},
		want: []string{"not ready after 300ms", `a line on stdout matching "^forwarding"`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir, stateDir := t.TempDir(), t.TempDir()
			first := []string{"sh", "-c", `sleep 60 & echo $! > "$1"; echo ready; wait`, "sh", filepath.Join(dir, "first")}
			cleanup := []string{"sh", "-c", `echo cleanup >> "$1"`, "sh", filepath.Join(dir, "cleanup")}
			done, err := (&deploy.Writer{StateDir: stateDir}).Prepare(t.Context(), testSpec(certfleet.ECDSAP256), deploy.Hooks{
				Helpers: []deploy.Helper{{Argv: first, ReadyLine: regexp.MustCompile("ready")}, tc.helper},
				Cleanup: [][]string{cleanup},
			}, nil)
			if err == nil || done != nil {
				t.Fatalf("Prepare: %v, want an error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if pid := readPID(t, filepath.Join(dir, "first")); running(pid) {
				t.Error("the helper started before the failing one still runs")
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "cleanup")); string(b) != "cleanup\n" {
				t.Errorf("cleanup ran %q, want once", b)
			}
			if n := len(records(t, stateDir)); n != 0 {
				t.Errorf("%d helper records left, want 0", n)
			}
		})
	}
}

// TestHelperPerName starts one helper per identifier, each told its own
// name, and polls Ready with that name; with two checks, a helper is
// ready once both passed.
func TestHelperPerName(t *testing.T) {
	log := filepath.Join(t.TempDir(), "names")
	probed := make(chan string, 10)
	done, err := new(deploy.Writer).Prepare(t.Context(), testSpec(certfleet.ECDSAP256), deploy.Hooks{
		Helpers: []deploy.Helper{{Argv: []string{"sh", "-c", `echo "$CERTFLEET_NAME" >> "$1"; echo ready; exec sleep 60`, "sh", log}, PerName: true,
			ReadyLine: regexp.MustCompile("ready"),
			Ready:     func(_ context.Context, name string) error { probed <- name; return nil }}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done()
	close(probed)
	var got []string
	for n := range probed {
		got = append(got, n)
	}
	if strings.Join(got, " ") != "example.org www.example.org" {
		t.Errorf("probed %q, want each name once", got)
	}
	b, _ := os.ReadFile(log)
	seen := strings.Fields(string(b))
	slices.Sort(seen) // both run at once: either may write first
	if strings.Join(seen, " ") != "example.org www.example.org" {
		t.Errorf("helpers saw CERTFLEET_NAME %q", b)
	}
}

// TestStopLeftHelpers: a certfleet killed (SIGKILL) while its helper ran
// leaves the helper's child running; StopLeftHelpers stops it and removes
// the record, and leaves alone the helpers of a certfleet that still runs
// (this test process).
func TestStopLeftHelpers(t *testing.T) {
	stateDir, dir := t.TempDir(), t.TempDir()
	// The helper is a shell whose child holds on; on Linux the shell
	// itself gets SIGTERM when its certfleet dies, the child does not.
	helper := []string{"sh", "-c", `sleep 60 & echo $! > "$1"; echo ready; wait`, "sh", filepath.Join(dir, "child")}
	cmd := exec.Command(os.Args[0], append([]string{prepareRole, stateDir}, helper...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "prepared\n" {
		cmd.Process.Kill()
		t.Fatalf("the prepared certfleet said %q", line)
	}

	// A helper of this (living) process, recorded in the same place.
	mine := []string{"sh", "-c", `echo ready; exec sleep 60`}
	done, err := (&deploy.Writer{StateDir: stateDir}).Prepare(t.Context(), testSpec(certfleet.ECDSAP256),
		deploy.Hooks{Helpers: []deploy.Helper{{Argv: mine, ReadyLine: regexp.MustCompile("ready")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer done()

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	child := readPID(t, filepath.Join(dir, "child"))
	if !running(child) {
		t.Fatal("the helper's child died with its certfleet: nothing left to stop")
	}
	n, err := deploy.StopLeftHelpers(stateDir, nil)
	if err != nil || n != 1 {
		t.Fatalf("StopLeftHelpers: %d, %v; want 1 stopped", n, err)
	}
	if running(child) {
		t.Error("the left helper's child still runs")
	}
	if got := len(records(t, stateDir)); got != 1 {
		t.Errorf("%d records left, want 1 (this process's helper)", got)
	}
	// Called again, nothing is left to stop, and this process's helper
	// is still not touched.
	if n, err := deploy.StopLeftHelpers(stateDir, nil); n != 0 || err != nil {
		t.Errorf("second StopLeftHelpers: %d, %v", n, err)
	}
	if got := len(records(t, stateDir)); got != 1 {
		t.Errorf("%d records left, want 1 (this process's helper)", got)
	}
}

// TestHelperSharedByKeyTypes: the two orders of a dual certificate run at
// once and share its helper (a forwarder bound to the CA's port could not
// start twice): it starts once, and stops when the last order ended.
func TestHelperSharedByKeyTypes(t *testing.T) {
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	w := new(deploy.Writer)
	spec := testSpec(certfleet.RSA2048, certfleet.ECDSAP256)
	hooks := deploy.Hooks{Helpers: []deploy.Helper{{Argv: []string{"sh", "-c", `echo $$ >> "$1"; echo ready; exec sleep 60`, "sh", starts},
		ReadyLine: regexp.MustCompile("ready")}}}
	doneRSA, err := w.Prepare(t.Context(), spec, hooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	doneECDSA, err := w.Prepare(t.Context(), spec, hooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	pids := strings.Fields(string(mustRead(t, starts)))
	if len(pids) != 1 {
		t.Fatalf("the helper started %d times, want once", len(pids))
	}
	pid, _ := strconv.Atoi(pids[0])
	doneRSA()
	if !running(pid) {
		t.Fatal("the helper stopped while the other order still ran")
	}
	doneECDSA()
	if running(pid) {
		t.Error("the helper still runs after both orders ended")
	}
	// The next order starts it afresh.
	done, err := w.Prepare(t.Context(), spec, hooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if n := len(strings.Fields(string(mustRead(t, starts)))); n != 2 {
		t.Errorf("the helper started %d times in all, want 2", n)
	}
}
