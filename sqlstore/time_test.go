package sqlstore_test

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet/sqlstore"
)

// microTime stands for a driver's scanner of its time encoding.
type microTime struct{ t *time.Time }

func wrapMicro(t *time.Time) any { return microTime{t} }

// TestScanTimes: only the *time.Time destinations are wrapped, in order;
// a row without one is passed through; a result set's rows reuse one
// buffer, without an allocation per row.
func TestScanTimes(t *testing.T) {
	var (
		buf  []any
		name string
		a, b time.Time
		n    int64
	)
	plain := []any{&name, &n}
	if got := sqlstore.ScanTimes(&buf, plain, wrapMicro); &got[0] != &plain[0] || buf != nil {
		t.Errorf("a row without times was copied: %v, buffer %v", got, buf)
	}
	dest := []any{&name, &a, &n, &b}
	got := sqlstore.ScanTimes(&buf, dest, wrapMicro)
	if len(got) != 4 || got[0] != &name || got[2] != &n || got[1] != (microTime{&a}) || got[3] != (microTime{&b}) {
		t.Errorf("ScanTimes = %v; want the two times wrapped in place", got)
	}
	if dest[1] != &a {
		t.Error("ScanTimes changed the caller's destinations")
	}
	if allocs := testing.AllocsPerRun(100, func() { sqlstore.ScanTimes(&buf, dest, wrapMicro) }); allocs != 0 {
		t.Errorf("ScanTimes allocates %.0f times a row; want none once the buffer is there", allocs)
	}
}
