package porttest_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/certfleet/certfleet/internal/porttest"
)

// childEnv makes the test binary, run again, reserve one port and print it.
const childEnv = "CERTFLEET_PORTTEST_CHILD"

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// listenAndClose is how daemontest.FreePort found a port before: the
// kernel picks one of its ephemeral range, free a moment ago.
func listenAndClose(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestListenAndCloseIsNotAReservation is the flake: a port found by
// listening on :0 and closing is in the kernel's ephemeral range and held
// by nobody, so another test (one given the same port, a :0 listener, an
// outgoing connection) can bind it before the server it was handed to
// does, which then fails with "address already in use".
func TestListenAndCloseIsNotAReservation(t *testing.T) {
	p := listenAndClose(t)
	if lo, hi := porttest.Range(); p >= lo && p <= hi {
		t.Fatalf("the kernel's :0 gave %d, within Free's range %d-%d: Free's ports are not kept from the kernel", p, lo, hi)
	}
	other, err := net.Listen("tcp", addr(p)) // another test binds it in between
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ln, err := net.Listen("tcp", addr(p)); !errors.Is(err, syscall.EADDRINUSE) {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("the server's listen on the handed-out port: %v; want address already in use", err)
	}
}

// TestFreeIsReservedAcrossProcesses: a port from Free is outside the
// kernel's ephemeral range (no :0 listener nor outgoing connection gets
// it) and another test process asking Free meanwhile gets another port,
// though it scans the same ports in the same order.
func TestFreeIsReservedAcrossProcesses(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		fmt.Printf("port %d\n", porttest.Free(t))
		return
	}
	p := porttest.Free(t)
	lo, hi := porttest.Range()
	if p < lo || p > hi {
		t.Fatalf("Free = %d, outside %d-%d", p, lo, hi)
	}
	for range 200 {
		if k := listenAndClose(t); k == p {
			t.Fatalf("the kernel handed a :0 listener the reserved port %d", p)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreeIsReservedAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var q int
	for _, l := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(l, "port "); ok {
			q, _ = strconv.Atoi(s)
		}
	}
	if q == 0 || q == p {
		t.Fatalf("another process's Free = %d while this one holds %d; want another port\n%s", q, p, out)
	}
	// And the server it is handed to binds it.
	ln, err := net.Listen("tcp", addr(p))
	if err != nil {
		t.Fatalf("listen on the reserved port: %v", err)
	}
	ln.Close()
}

// TestFreeSkipsPortsInUse: a port of the range some server of the machine
// already listens on is not handed out.
func TestFreeSkipsPortsInUse(t *testing.T) {
	lo, hi := porttest.Range()
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	// Occupy the first ports of the range that nobody holds.
	busy := map[int]bool{}
	for port := lo; port <= hi && len(held) < 5; port++ {
		if ln, err := net.Listen("tcp", addr(port)); err == nil {
			held = append(held, ln)
			busy[port] = true
		}
	}
	for range 5 {
		if p := porttest.Free(t); busy[p] {
			t.Fatalf("Free = %d, where a server listens", p)
		}
	}
}
