package chromium

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// findOrSkip returns the browser; under CI a missing one fails the test.
func findOrSkip(t *testing.T) string {
	t.Helper()
	path, err := Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and chromium is required: %v", err)
		}
		t.Skipf("SKIPPING: %v", err)
	}
	return path
}

const helperEnv = "CERTFLEET_CHROMIUM_ORPHAN_HELPER"

// TestBrowserDiesWithTestProcess: a test binary that dies without Close
// (a panic, go test -timeout) must not leave Chromium running. A helper
// process starts the browser, prints its pid and exits at once; the
// browser must then die too.
func TestBrowserDiesWithTestProcess(t *testing.T) {
	if dir := os.Getenv(helperEnv); dir != "" {
		b, err := Start(t.Context(), findOrSkip(t), dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("pid", b.cmd.Process.Pid)
		os.Exit(0) // no Close, as when go test -timeout kills the binary
	}
	if runtime.GOOS != "linux" {
		t.Skip("only Linux has a parent-death signal")
	}
	findOrSkip(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrowserDiesWithTestProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var pid int
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "pid "); ok {
			pid, _ = strconv.Atoi(p)
		}
	}
	if pid <= 0 {
		t.Fatalf("the helper printed no browser pid:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for alive(pid) {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pid, syscall.SIGKILL) // its process group
			t.Fatalf("chromium (pid %d) still runs 30 s after the process that started it exited", pid)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// alive reports whether pid runs (a zombie has ended: in a container its
// new parent may never reap it).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}
