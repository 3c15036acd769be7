package sqlstore

import (
	"slices"
	"time"
)

// NullTime is a time argument that is NULL when zero.
func NullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// Stored returns t as both databases keep it: UTC, whole microseconds,
// the zero time unchanged.
func Stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// ScanTimes returns dest for a driver's Scan with every *time.Time in it
// replaced by wrap(it): a scanner of the driver's own time encoding (each
// store keeps times its way, and Rows.Scan reads them into time.Time). With
// no time among dest it returns dest itself; otherwise a copy in *buf,
// which a result set reuses row after row. wrap should return a value one
// pointer wide, which an interface holds without an allocation.
func ScanTimes(buf *[]any, dest []any, wrap func(*time.Time) any) []any {
	i := slices.IndexFunc(dest, isTimeDest)
	if i < 0 {
		return dest
	}
	b := append((*buf)[:0], dest...)
	for ; i < len(b); i++ {
		if t, ok := b[i].(*time.Time); ok {
			b[i] = wrap(t)
		}
	}
	*buf = b
	return b
}

func isTimeDest(d any) bool {
	_, ok := d.(*time.Time)
	return ok
}
