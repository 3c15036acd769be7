package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// TestStopLeftHelpersSpares: records whose process cannot be the helper
// any more (its pid reused by another process, or an earlier boot) are
// removed without signalling anyone; an unreadable record is reported.
func TestStopLeftHelpersSpares(t *testing.T) {
	if _, ok := procStart(os.Getpid()); !ok {
		t.Skip("process start times are not readable here (no /proc)")
	}
	stateDir := t.TempDir()
	// An innocent process, in a group of its own like a helper's.
	innocent := exec.Command("sleep", "60")
	innocent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := innocent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { innocent.Process.Kill(); innocent.Wait() }()
	start, _ := procStart(innocent.Process.Pid)
	// An owner that is gone.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(stateDir, helpersDir)
	os.MkdirAll(dir, 0o700)
	write := func(name string, rec helperRecord) {
		t.Helper()
		b, _ := json.Marshal(rec)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := helperRecord{PID: innocent.Process.Pid, Start: start, Boot: bootID(), OwnerPID: gone.Process.Pid, OwnerStart: "1", Grace: "1s", Argv: []string{"x"}}
	reused := base
	reused.Start = start + "0" // the helper started at another time: the pid was reused
	write("1.json", reused)
	earlier := base
	earlier.Boot = "an-earlier-boot"
	write("2.json", earlier)
	os.WriteFile(filepath.Join(dir, "3.json"), []byte("{not json"), 0o600)

	n, err := StopLeftHelpers(stateDir, nil)
	if n != 0 {
		t.Errorf("stopped %d helpers, want 0", n)
	}
	if err == nil {
		t.Error("the unreadable record was not reported")
	}
	// Had it been signalled, StopLeftHelpers would have waited until it
	// was gone.
	if _, ok := procStart(innocent.Process.Pid); !ok {
		t.Fatal("a process whose pid matched a record was signalled")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("%d records left, want all removed", len(left))
	}

	// The same record with the right start time is the helper's.
	write(strconv.Itoa(base.PID)+".json", base)
	if n, err := StopLeftHelpers(stateDir, nil); n != 1 || err != nil {
		t.Fatalf("StopLeftHelpers: %d, %v; want the helper stopped", n, err)
	}
	if _, ok := procStart(innocent.Process.Pid); ok {
		t.Error("the helper whose record matches still runs")
	}
}
