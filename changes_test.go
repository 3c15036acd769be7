package certfleet

import "testing"

// TestChangesVersion: NotifySpec changes the version of its certificate
// alone, Notify every certificate's, NotifyElsewhere none; every kind
// wakes the waiters.
func TestChangesVersion(t *testing.T) {
	var c Changes
	a, b := c.Version("a"), c.Version("b")
	woken := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	w := c.Wait()
	c.NotifySpec("a")
	if c.Version("a") == a || c.Version("b") != b || !woken(w) {
		t.Fatalf("NotifySpec(a): versions a %d→%d, b %d→%d, woken %v; want a changed, b not, waiters woken", a, c.Version("a"), b, c.Version("b"), woken(w))
	}
	a, w = c.Version("a"), c.Wait()
	c.NotifyElsewhere()
	if c.Version("a") != a || c.Version("b") != b || !woken(w) {
		t.Fatal("NotifyElsewhere changed a version or did not wake the waiters")
	}
	w = c.Wait()
	c.Notify()
	if c.Version("a") == a || c.Version("b") == b || !woken(w) {
		t.Fatal("Notify left a version unchanged or did not wake the waiters")
	}
	// Beyond maxChangedSpecs the memory is dropped: every version changes.
	b = c.Version("b")
	for i := range maxChangedSpecs + 1 {
		c.NotifySpec(string(rune('a'+i%26)) + string(rune(i)))
	}
	if c.Version("b") == b {
		t.Fatal("after forgetting which certificates changed, b's version stayed")
	}
}
