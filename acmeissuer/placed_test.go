package acmeissuer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// TestInterruptedPlacingResumed is issue 16's order placed about 0.25 s
// before SIGKILL: the CA created the order but the instance died before
// the store saved its URL. The instance taking the job over holds only the
// placing mark; it finds the order in the account's orders list (several
// pages, with another job's order for the same names excluded) and
// continues it: the CA counts no second order for the certificate.
func TestInterruptedPlacingResumed(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	iss := env.newTestIssuer(t, nil)
	killed := errors.New("killed before the order's URL was saved")

	// The dying instance: the mark is saved, the order placed, its URL
	// never saved.
	req := newTestRequest(t, certfleet.ECDSAP256, "placed.example", "www.placed.example")
	var (
		mark   certfleet.OrderPlacing
		placed string
	)
	req.OnPlacing = func(_ context.Context, p certfleet.OrderPlacing) error { mark = p; return nil }
	req.OnOrder = func(_ context.Context, u string) error { placed = u; return killed }
	if _, err := iss.Issue(t.Context(), req); !errors.Is(err, killed) {
		t.Fatalf("first attempt: %v, want the simulated kill", err)
	}
	if mark.At.IsZero() || mark.Account == "" || len(mark.Identifiers) != 2 || placed == "" {
		t.Fatalf("mark = %+v, order %q; want the mark saved before the order was placed", mark, placed)
	}

	// Meanwhile: other certificates of the account (the list runs over
	// several of Pebble's three-order pages), and the RSA job of the same
	// spec whose pending order, for the same names, is newer.
	for _, name := range []string{"other1.example", "other2.example", "other3.example", "other4.example"} {
		mustIssue(t, iss, newTestRequest(t, certfleet.ECDSAP256, name))
	}
	sibling := newTestRequest(t, certfleet.RSA2048, "placed.example", "www.placed.example")
	var siblingOrder string
	sibling.OnOrder = func(_ context.Context, u string) error { siblingOrder = u; return killed }
	if _, err := iss.Issue(t.Context(), sibling); !errors.Is(err, killed) {
		t.Fatalf("sibling: %v", err)
	}
	before := env.ca.NewOrders()

	// The instance taking over: same identifiers, a key of its own.
	take := newTestRequest(t, certfleet.ECDSAP256, "placed.example", "www.placed.example")
	take.Placed, take.NotOrders = &mark, []string{siblingOrder}
	var saved []string
	take.OnOrder = func(_ context.Context, u string) error { saved = append(saved, u); return nil }
	take.OnPlacing = func(context.Context, certfleet.OrderPlacing) error {
		t.Error("the takeover marked a new placing")
		return nil
	}
	res := mustIssue(t, iss, take)
	mustVerify(t, res.ChainPEM, env.ca.Roots(), take)
	if got := env.ca.NewOrders() - before; got != 0 {
		t.Errorf("the takeover placed %d orders, want 0 (the interrupted one continued)", got)
	}
	if res.OrderURL != placed || len(saved) != 1 || saved[0] != placed {
		t.Errorf("issued from order %s (saved %q), want the interrupted order %s", res.OrderURL, saved, placed)
	}
}

// TestInterruptedPlacingOtherAccount: a mark made with another account
// (the account was replaced meanwhile) cannot be looked up; a new order
// is placed.
func TestInterruptedPlacingOtherAccount(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	iss := env.newTestIssuer(t, nil)
	req := newTestRequest(t, certfleet.ECDSAP256, "gone.example")
	req.Placed = &certfleet.OrderPlacing{Account: "https://ca.example/acct/elsewhere", Identifiers: req.Spec.Identifiers}
	mustIssue(t, iss, req)
	if got := env.ca.NewOrders(); got != 1 {
		t.Errorf("orders = %d, want 1", got)
	}
}

// TestRefusedOrderClearsPlacing: a newOrder the CA refused created no
// order, so the mark is cleared (a zero OnPlacing); left, it would make the
// next attempt walk the orders list for nothing.
func TestRefusedOrderClearsPlacing(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	iss := env.newTestIssuer(t, nil)
	req := newTestRequest(t, certfleet.ECDSAP256, "refused.example")
	req.Spec.Identifiers = []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: "no!such.example"}}
	var marks []certfleet.OrderPlacing
	req.OnPlacing = func(_ context.Context, p certfleet.OrderPlacing) error { marks = append(marks, p); return nil }
	if _, err := iss.Issue(t.Context(), req); err == nil {
		t.Fatal("the CA accepted a malformed name")
	}
	if len(marks) != 2 || marks[0].At.IsZero() || !marks[1].At.IsZero() {
		t.Errorf("marks = %+v, want the mark, then a zero one", marks)
	}
}
