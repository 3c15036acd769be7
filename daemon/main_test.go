package daemon_test

import (
	"os"
	"testing"

	"github.com/certfleet/certfleet/internal/daemontest"
)

func TestMain(m *testing.M) {
	// The test binary is also the forwarder prepare helpers start, and
	// the certfleet a test kills mid-order.
	daemontest.RunRole()
	// Pebble reads its knobs in its constructors; t.Setenv would rule out
	// t.Parallel.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}
