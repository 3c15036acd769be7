package sqlstore

// The queues of jobs waiting for a rate-limit budget (issue 13): one row
// per waiting job in rate_waits, read and written inside ReserveBudget's
// transaction under the CA's lock (qLockBudget), so that places, tickets
// and freed slots are handed out once across instances.

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/certfleet/certfleet"
)

// notWaiting is the ticket of a job that waits in no queue: behind every
// job that does.
const notWaiting = math.MaxInt64

var (
	// qJobWait reads a job's row ID and its wait, if any (ticket 0:
	// none). A job the store does not hold has no row: it is answered
	// without a queue.
	qJobWait = SQL(`SELECT j.id, coalesce(w.ticket, 0), coalesce(w.ca, ''), coalesce(w.bucket, ''), coalesce(w.name, ''), w.since, w.turn
		FROM jobs j LEFT JOIN rate_waits w ON w.job_id = j.id
		WHERE j.spec = $1 AND j.key_type = $2`)
	// qWaitsAhead counts the jobs waiting in a bucket ahead of a ticket,
	// in the rate_waits_queue index alone. A disabled job waits for
	// nothing: migration 0011's trigger takes it out of its queue, so it
	// never holds a place that the jobs behind it count.
	qWaitsAhead = SQL(`SELECT count(*) FROM rate_waits WHERE ca = $1 AND bucket = $2 AND ticket < $3`)
	// qWaitTurnBehind is the turn of the job $4 places (from 0) before
	// the last job waiting ahead of a ticket: counted from the end, so a
	// job joining a long queue reads a window's worth of it, not all.
	qWaitTurnBehind = SQL(`SELECT turn FROM rate_waits WHERE ca = $1 AND bucket = $2 AND ticket < $3
		ORDER BY ticket DESC LIMIT 1 OFFSET $4`)
	qNextTicket = SQL(`SELECT coalesce(max(ticket), 0) + 1 FROM rate_waits WHERE ca = $1`)
	qJoinQueue  = SQL(`INSERT INTO rate_waits (job_id, ticket, ca, bucket, name, since, turn) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (job_id) DO UPDATE SET ticket = excluded.ticket, ca = excluded.ca, bucket = excluded.bucket,
			name = excluded.name, since = excluded.since, turn = excluded.turn`)
	qStayInQueue = SQL(`UPDATE rate_waits SET bucket = $1, name = $2, turn = $3 WHERE job_id = $4`)
	// qLeaveQueue ends a job's wait: its turn came (a reservation passed
	// it), or its attempt ended some other way (failed, not due).
	qLeaveQueue = SQL(`DELETE FROM rate_waits WHERE job_id = $1`)
	// qRefundedBuckets lists the buckets a refund gives a slot back to.
	qRefundedBuckets = SQL(`SELECT ca, bucket FROM rate_log WHERE reservation = $1 AND refundable`)
	// qWakeFirst moves the turn of the first job waiting in a bucket
	// whose turn is still to come to now: a slot given back early goes
	// to it. Its job is made due in qWakeJob.
	qWakeFirst = SQL(`UPDATE rate_waits SET turn = $1 WHERE job_id = (
			SELECT job_id FROM rate_waits WHERE ca = $2 AND bucket = $3 AND turn > $1
			ORDER BY ticket LIMIT 1)
		RETURNING job_id`)
	qWakeJob = SQL(`UPDATE jobs SET next_at = $1 WHERE id = $2 AND next_at > $1`)

	waitColumns = `j.spec, j.key_type, w.ca, w.bucket, w.name, w.ticket, w.since, w.turn`
	// qBudgetWaits lists every waiting job with its place.
	qBudgetWaits = SQL(`SELECT ` + waitColumns + `,
			row_number() OVER (PARTITION BY w.ca, w.bucket ORDER BY w.ticket)
		FROM rate_waits w JOIN jobs j ON j.id = w.job_id
		ORDER BY w.ca, w.bucket, w.ticket`)
	// qBudgetWaitsOf lists the waits of one spec, each place counted in
	// its bucket.
	qBudgetWaitsOf = SQL(`SELECT ` + waitColumns + `,
			(SELECT count(*) FROM rate_waits o WHERE o.ca = w.ca AND o.bucket = w.bucket AND o.ticket < w.ticket) + 1
		FROM rate_waits w JOIN jobs j ON j.id = w.job_id
		WHERE j.spec = $1 AND ($2 = '' OR j.key_type = $2)
		ORDER BY w.ca, w.bucket, w.ticket`)
)

// jobWait is what a reservation knows of its job's wait.
type jobWait struct {
	jobID int64 // 0: the request is for no job the store holds
	certfleet.BudgetWait
}

func (w jobWait) waiting() bool { return w.Ticket != 0 }

// loadJobWait reads the wait of r's job, at r's CA. A wait at another CA
// (the job's account moved) does not count there.
func loadJobWait(tx Tx, r certfleet.BudgetRequest) (jobWait, error) {
	w := jobWait{BudgetWait: certfleet.BudgetWait{Job: r.Job}}
	if r.Job.Spec == "" {
		return w, nil
	}
	err := tx.QueryRow(qJobWait, r.Job.Spec, string(r.Job.KeyType)).Scan(&w.jobID, &w.Ticket, &w.CA, &w.Bucket, &w.Name, &w.Since, &w.Turn)
	if noRows(err) {
		return jobWait{BudgetWait: certfleet.BudgetWait{Job: r.Job}}, nil
	} else if err != nil {
		return w, fmt.Errorf("read the wait of %s: %w", r.Job, err)
	}
	return w, nil
}

// ticketAt is the job's place in the order of r's CA: its ticket, or
// behind everyone when it is not waiting there.
func (w jobWait) ticketAt(ca string) int64 {
	if w.waiting() && w.CA == ca {
		return w.Ticket
	}
	return notWaiting
}

// aheadOf counts the jobs waiting ahead of ticket for l. A
// check-only limit has no queue: its entries come from events (failed
// validations), not from the jobs that pass it, so a job ahead takes
// nothing from the one behind.
func aheadOf(tx Tx, ca string, l certfleet.BudgetLimit, ticket int64) (int, error) {
	if l.CheckOnly {
		return 0, nil
	}
	var n int
	if err := tx.QueryRow(qWaitsAhead, ca, l.Bucket, ticket).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the jobs waiting for %s: %w", l.Name, err)
	}
	return n, nil
}

// turnOf estimates when a job with ahead jobs before it in the queue of l
// can pass it, with n entries in the window at r.At. Each entry leaves the
// window after l.Window; each job ahead is taken to pass at its own turn
// and add an entry then. Of the sequence "entries, oldest first, then the
// turns of the jobs ahead", the job must wait until the one that is
// l.Limit places before it has left the window.
func turnOf(tx Tx, r certfleet.BudgetRequest, l certfleet.BudgetLimit, n, ahead int, ticket int64) (time.Time, error) {
	k := n + ahead - l.Limit
	var at time.Time
	if k < n {
		if err := tx.QueryRow(qBudgetFreesAt, r.CA, l.Bucket, r.At.Add(-l.Window), k).Scan(&at); err != nil {
			return at, fmt.Errorf("oldest entry of %s: %w", l.Name, err)
		}
	} else {
		// The (k-n)-th job ahead from the first is the
		// (ahead-1-(k-n))-th, that is the (l.Limit-1)-th, from the last.
		if err := tx.QueryRow(qWaitTurnBehind, r.CA, l.Bucket, ticket, l.Limit-1).Scan(&at); err != nil {
			return at, fmt.Errorf("turn of the jobs waiting for %s: %w", l.Name, err)
		}
	}
	at = at.Add(l.Window)
	if at.Before(r.At) {
		// The job ahead whose turn it is has not come for it yet: as
		// soon as possible.
		at = r.At
	}
	return at, nil
}

// wait puts w's job in the queue of the limit that blocks it (or keeps it
// there, with its ticket, when it was waiting already) and returns its
// place: place is counted from ahead, turn is when it can pass.
func (w jobWait) wait(tx Tx, r certfleet.BudgetRequest, l certfleet.BudgetLimit, ahead int, turn time.Time) (*certfleet.BudgetWait, error) {
	out := certfleet.BudgetWait{Job: r.Job, CA: r.CA, Bucket: l.Bucket, Name: l.Name, Ticket: w.Ticket, Since: w.Since,
		Place: ahead + 1, Turn: Stored(turn)}
	if w.ticketAt(r.CA) != notWaiting {
		if _, err := tx.Exec(qStayInQueue, l.Bucket, l.Name, turn, w.jobID); err != nil {
			return nil, fmt.Errorf("keep %s waiting for %s: %w", r.Job, l.Name, err)
		}
		return &out, nil
	}
	if err := tx.QueryRow(qNextTicket, r.CA).Scan(&out.Ticket); err != nil {
		return nil, fmt.Errorf("ticket for %s: %w", r.Job, err)
	}
	out.Since, out.New = Stored(r.At), true
	if _, err := tx.Exec(qJoinQueue, w.jobID, out.Ticket, r.CA, l.Bucket, l.Name, r.At, turn); err != nil {
		return nil, fmt.Errorf("queue %s for %s: %w", r.Job, l.Name, err)
	}
	return &out, nil
}

// release ends w's wait: the reservation passed it.
func (w jobWait) release(tx Tx) (*certfleet.BudgetWait, error) {
	if !w.waiting() {
		return nil, nil
	}
	if _, err := tx.Exec(qLeaveQueue, w.jobID); err != nil {
		return nil, fmt.Errorf("end the wait of %s: %w", w.Job, err)
	}
	out := w.BudgetWait
	return &out, nil
}

// wakeFirst gives a slot freed in (ca, bucket) to the first job whose turn
// there is still to come: its turn and its job's next time become now. It
// reports whether a job was woken.
func wakeFirst(tx Tx, ca, bucket string, now time.Time) (bool, error) {
	var id int64
	err := tx.QueryRow(qWakeFirst, now, ca, bucket).Scan(&id)
	if noRows(err) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("wake the first job waiting for %s: %w", bucket, err)
	}
	if _, err := tx.Exec(qWakeJob, now, id); err != nil {
		return false, fmt.Errorf("wake the first job waiting for %s: %w", bucket, err)
	}
	return true, nil
}

// PostponeJob implements certfleet.RateLimitStore: qDeferJob without an
// attempt. It does not notify: the job is due later, not sooner.
func (s *Store) PostponeJob(ctx context.Context, key certfleet.JobKey, owner string, nextAt time.Time) error {
	if nextAt.IsZero() {
		return certfleet.Errorf(certfleet.EINVALID, "postpone job %s: next attempt time required", key)
	}
	if err := s.fenced(ctx, key, owner, quiet, qDeferJob, nextAt); err != nil {
		return fmt.Errorf("postpone job %s: %w", key, err)
	}
	return nil
}

// BudgetWaits implements certfleet.RateLimitStore.
func (s *Store) BudgetWaits(ctx context.Context, f certfleet.BudgetWaitFilter) ([]certfleet.BudgetWait, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	var rows Rows
	if f.Spec == "" {
		rows, err = q.Query(qBudgetWaits)
	} else {
		rows, err = q.Query(qBudgetWaitsOf, f.Spec, string(f.KeyType))
	}
	if err != nil {
		return nil, fmt.Errorf("list jobs waiting for a rate-limit budget: %w", err)
	}
	defer rows.Close()
	var out []certfleet.BudgetWait
	for rows.Next() {
		var (
			w  certfleet.BudgetWait
			kt string
		)
		if err := rows.Scan(&w.Job.Spec, &kt, &w.CA, &w.Bucket, &w.Name, &w.Ticket, &w.Since, &w.Turn, &w.Place); err != nil {
			return nil, fmt.Errorf("list jobs waiting for a rate-limit budget: %w", err)
		}
		w.Job.KeyType = certfleet.KeyType(kt)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs waiting for a rate-limit budget: %w", err)
	}
	return out, nil
}
