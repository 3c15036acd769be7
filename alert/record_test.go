package alert_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// rowLocker is a notifier that fails after another PostgreSQL session
// locks the incident's row, as a long transaction would: the store then
// does not answer the evaluator's update of that row until the lock goes
// (unlock, or after hold).
type rowLocker struct {
	dsn  string
	hold time.Duration

	mu   sync.Mutex
	conn *pgx.Conn
	tx   pgx.Tx
	err  error
}

func (l *rowLocker) Notify(ctx context.Context, n alert.Notification) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	conn, err := pgx.Connect(context.Background(), l.dsn)
	if err != nil {
		l.err = err
		return err
	}
	tx, err := conn.Begin(context.Background())
	if err == nil {
		_, err = tx.Exec(context.Background(), "SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", n.IncidentID)
	}
	if err != nil {
		l.err = err
		conn.Close(context.Background())
		return err
	}
	l.conn, l.tx = conn, tx
	time.AfterFunc(l.hold, l.unlock)
	return errors.New("receiver down")
}

func (l *rowLocker) unlock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tx != nil {
		l.tx.Rollback(context.Background())
		l.conn.Close(context.Background())
		l.tx, l.conn = nil, nil
	}
}

// TestDeliveryRecordBoundedByClaim: a failed delivery's outcome is
// recorded even after the round's context ended, but the wait for a store
// that does not answer ends with the claim (after it another instance may
// take the notification anyway): it used context.WithoutCancel with no
// deadline, so a stuck store also stuck serve's shutdown, which waits for
// the evaluator.
func TestDeliveryRecordBoundedByClaim(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := openPostgres(t, dsn)
	f := newFixture(t, s)
	f.fail(t, "unauthorized")
	c := &clock{now: f.t0.Add(day(80))}
	// The lock outlives the claim by far; without a deadline the release
	// waits for it and then succeeds.
	lock := &rowLocker{dsn: dsn, hold: 20 * time.Second}
	t.Cleanup(lock.unlock)
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now, Claim: 2 * time.Second, Notifiers: []alert.Notifier{lock}}
	rep, err := e.Round(t.Context())
	lock.mu.Lock()
	lerr := lock.err
	lock.mu.Unlock()
	if lerr != nil {
		t.Fatalf("lock the incident row: %v", lerr)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("round with the incident row locked = %+v, %v; want the release of the claim cut off at the claim's end", rep, err)
	}
}
