// Package porttest hands tests loopback ports that stay theirs until the
// test ends, for servers that must be told their port before they start: an
// http-01 responder the CA was configured to dial, a child process's API
// address written into its config.
//
// A port found by listening on 127.0.0.1:0 and closing is free only for a
// moment: the kernel hands the same ephemeral range to every other :0
// listener and to the local end of every outgoing connection on the
// machine, and another test process may find the same port the same way,
// so under parallel test packages the port can be taken before the server
// binds it ("address already in use", or the CA validating against someone
// else's server). Free picks instead from just below the ephemeral range,
// which the kernel never hands out on its own, and holds a lock on the port
// (a file under the temporary directory, flock(2)) until the test ends, so
// no other test process of the machine using Free is given it meanwhile.
//
// It starts no server. A server that can report the address it bound
// should listen on :0 and say where, which needs no reservation at all.
// Import it from _test.go files and test helpers only.
package porttest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// span is how many ports below the ephemeral range Free uses.
const span = 8000

// Free returns a loopback port on which nothing listens (TCP nor UDP),
// outside the kernel's ephemeral range, and reserved for t until t ends:
// another Free, in this process or another, does not return it meanwhile.
// The caller binds it (or hands it to the server that will); nothing else
// of the machine is given it by the kernel.
func Free(t testing.TB) int {
	t.Helper()
	lo, hi := Range()
	dir := filepath.Join(os.TempDir(), "certfleet-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("porttest: %v", err)
	}
	os.Chmod(dir, 0o777|os.ModeSticky) // shared by every user's tests; best effort
	for port := lo; port <= hi; port++ {
		f, ok := lock(filepath.Join(dir, strconv.Itoa(port)))
		if !ok {
			continue // another test holds it
		}
		if !bindable(port) {
			f.Close() // a server of the machine has it; closing drops the lock
			continue
		}
		t.Cleanup(func() { f.Close() })
		return port
	}
	t.Fatalf("porttest: every port from %d to %d is reserved or in use", lo, hi)
	return 0
}

// Range is the span of ports Free picks from: the span ports just below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range; 32768 when it
// cannot be read).
func Range() (lo, hi int) {
	start := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				start = n
			}
		}
	}
	return max(1024, start-span), start - 1
}

// lock opens path and takes an exclusive flock on it without waiting; the
// lock lasts while the file stays open (and ends with the process).
func lock(path string) (*os.File, bool) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// bindable reports whether a TCP listener and a UDP socket can bind port on
// the loopback address now.
func bindable(port int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}
