package daemontest_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/porttest"
)

// TestFreePortIsReserved: the ports handed to the servers and child
// processes the tests start later (about thirty call sites) are reserved
// ones, outside the kernel's ephemeral range; FreePort used to listen on
// :0 and close, which left the port to the next :0 listener, outgoing
// connection or test process that got it first (porttest's tests show
// that race).
func TestFreePortIsReserved(t *testing.T) {
	p := daemontest.FreePort(t)
	if lo, hi := porttest.Range(); p < lo || p > hi {
		t.Fatalf("FreePort = %d: from the kernel's ephemeral range, not a reserved port of %d-%d", p, lo, hi)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("listen on the port FreePort gave: %v", err)
	}
	ln.Close()
}
