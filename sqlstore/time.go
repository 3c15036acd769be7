package sqlstore

import "time"

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
