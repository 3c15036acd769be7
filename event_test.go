package certfleet

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestFailureReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{context.Canceled, "canceled"},
		{fmt.Errorf("order: %w", context.DeadlineExceeded), "timeout"},
		{Errorf(EUNAVAILABLE, "CA down"), EUNAVAILABLE},
		{errors.New("boom"), EINTERNAL},
		{fmt.Errorf("x: %w", problemErr("urn:ietf:params:acme:error:rateLimited")), "rateLimited"},
	} {
		if got := FailureReason(c.err); got != c.want {
			t.Errorf("FailureReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

type problemErr string

func (p problemErr) Error() string       { return string(p) }
func (p problemErr) ProblemType() string { return string(p) }

type countSink struct{ n int }

func (c *countSink) RecordEvent(context.Context, Event) error { c.n++; return errors.New("full") }

func TestEventSinks(t *testing.T) {
	a, b := &countSink{}, &countSink{}
	err := EventSinks{a, nil, b}.RecordEvent(context.Background(), Event{Kind: EventIssued})
	if err == nil || a.n != 1 || b.n != 1 {
		t.Fatalf("err=%v a=%d b=%d: every sink must get the event and the error must be returned", err, a.n, b.n)
	}
}
