package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.SpecWriter = (*Store)(nil)

// lockSpecsKey is the first key of the PostgreSQL advisory lock that
// serialises the writes of specs (see lockSpecs); the second is the hash
// of the schema, so databases with one certfleet schema each do not wait
// for each other. Ours: "cf" in ASCII, then 2 (package postgres keeps 1
// for its migrations). It never changes: instances of different certfleet
// versions on one database must take the same lock.
const lockSpecsKey = 0x6366_0002

var (
	qLockSpecs = SQLEach("", `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`)

	qReenableSpec      = SQL(`UPDATE specs SET source = $1, disabled = false, spec = $2, updated_at = $3, tenant = $5 WHERE name = $4`)
	qEraseIssuanceKeys = SQL(`UPDATE issuances SET key_pem = $1 WHERE spec = $2`)
	qForgetCurrent     = SQL(`UPDATE jobs SET current_id = NULL, current_revision = '', pending_order_url = '', pending_key = $1
		WHERE spec = $2`)
)

// lockSpecs takes the lock that serialises every write of specs
// (SyncSpecs, PutSpec, WithdrawSpec) within one schema, held until tx
// ends: two PostgreSQL instances putting the same new name at once would
// otherwise both find it absent, and the second insert would fail with a
// unique violation instead of finding the spec unchanged. SQLite's write
// transactions already exclude each other: there it does nothing.
func lockSpecs(tx Tx) error {
	if _, err := tx.Exec(qLockSpecs, lockSpecsKey); err != nil {
		return fmt.Errorf("take spec lock: %w", err)
	}
	return nil
}

// PutSpec implements certfleet.SpecWriter. A change tells every instance
// (certfleet.Notifier) in the same transaction, so every scheduler and
// long-poll hears of it.
//
// A spec of a tenant is checked under the spec lock, so the checks hold
// across instances: the tenant must exist (EINVALID), a spec of another
// tenant that is not withdrawn is not taken over (ECONFLICT), and a change
// that adds names must keep the tenant within its MaxNames (EQUOTA; fewer
// names are always accepted).
func (s *Store) PutSpec(ctx context.Context, sp certfleet.CertificateSpec) (bool, error) {
	res, err := s.PutSpecs(ctx, []certfleet.SpecPut{{Spec: sp}})
	if err != nil {
		return false, err
	}
	return res[0].Changed, res[0].Err
}

var _ certfleet.SpecBatchWriter = (*Store)(nil)

// PutSpecs implements certfleet.SpecBatchWriter: one transaction under the
// spec lock, each put as PutSpec above on the state the earlier ones left,
// an audit event with each put that changed something, and one
// notification of the names changed by all of them. On PostgreSQL the
// statements of one put go to the server in one round trip with the read
// of the next, and the batch costs one commit.
func (s *Store) PutSpecs(ctx context.Context, puts []certfleet.SpecPut) ([]certfleet.SpecPutResult, error) {
	type prepared struct {
		js    string
		event *certfleet.Event
		err   error // refused before the transaction
	}
	now := s.now()
	prep := make([]prepared, len(puts))
	for i, p := range puts {
		sp := p.Spec
		if err := sp.Validate(); err != nil {
			prep[i].err = certfleet.Errorf(certfleet.EINVALID, "%v", err)
			continue
		}
		if sp.Source == "" {
			prep[i].err = certfleet.Errorf(certfleet.EINVALID, "put spec %q: source required", sp.Name)
			continue
		}
		sp.Disabled = false
		js, err := specJSON(sp)
		if err != nil {
			return nil, err
		}
		prep[i].js = js
		if p.Event != nil {
			e, err := certfleet.PrepareEvent(*p.Event, now)
			if err != nil {
				return nil, fmt.Errorf("put spec %q: %w", sp.Name, err)
			}
			prep[i].event = &e
		}
	}
	res := make([]certfleet.SpecPutResult, len(puts))
	err := s.write(ctx, func(tx Tx) error {
		if err := lockSpecs(tx); err != nil {
			return err
		}
		// The batch's specs are read in one statement; a spec put twice
		// is read again the second time, after the first put's writes.
		var asked []string
		for i, p := range puts {
			if prep[i].err == nil {
				asked = append(asked, p.Spec.Name)
			}
		}
		var before map[string]storedSpec
		if len(asked) > 1 {
			var err error
			if before, err = batchSpecs(tx, asked); err != nil {
				return err
			}
		}
		written := make(map[string]bool, len(asked))
		var names []string // whose certificates changed, for the watchers
		for i, p := range puts {
			res[i] = certfleet.SpecPutResult{Err: prep[i].err}
			if prep[i].err != nil {
				continue
			}
			sp := p.Spec
			sp.Disabled = false
			var stored *storedSpecRow
			if before != nil && !written[sp.Name] {
				row, ok := before[sp.Name]
				stored = &storedSpecRow{exists: ok, storedSpec: row}
			}
			written[sp.Name] = true
			changed, created, touched, err := putSpec(tx, sp, prep[i].js, now, stored)
			var r refusal
			switch {
			case errors.As(err, &r):
				res[i].Err = fmt.Errorf("put spec %q: %w", sp.Name, r.err)
				continue
			case err != nil:
				return fmt.Errorf("put spec %q: %w", sp.Name, err)
			case !changed:
				continue
			}
			res[i].Changed = true
			if created {
				// As the store reads it back: microseconds, UTC.
				res[i].CreatedAt = now.Truncate(time.Microsecond).UTC()
			}
			names = append(names, touched...)
			if e := prep[i].event; e != nil {
				tx.Queue(qInsertEvent, e.At, e.Kind, e.Actor, certfleet.ActorType(e.Actor), e.Remote,
					e.Certificate, string(e.KeyType), e.Serial, e.IssuanceID, e.Reason, e.Detail)
			}
		}
		if len(names) == 0 {
			return nil
		}
		if err := notifyNames(tx, names); err != nil {
			return err
		}
		return tx.Notify()
	})
	if err != nil {
		if len(puts) == 1 {
			return nil, fmt.Errorf("put spec %q: %w", puts[0].Spec.Name, err)
		}
		return nil, fmt.Errorf("put %d specs: %w", len(puts), err)
	}
	return res, nil
}

// storedSpecRow is a spec's row, or its absence.
type storedSpecRow struct {
	exists bool
	storedSpec
}

// qBatchSpecs reads the rows of the specs named in a JSON array (the
// dialects read JSON arrays alike; PostgreSQL has no json_each). On
// PostgreSQL each name is looked up on its own, a lateral subquery kept
// apart by OFFSET 0: a lookup by primary key whatever the table's size or
// statistics. Two earlier forms depended on them: `name IN (SELECT
// jsonb_array_elements_text($1))` was planned as a semi-join over a scan
// of every spec below some 15,000 specs (the planner takes the set for 100
// names), and `name = ANY (ARRAY(...))` as a scan of every spec when a
// pooled connection made its generic plan while specs held a few hundred
// rows; a generic plan is kept until statistics change, and without an
// ANALYZE (autovacuum off, or not yet run) every later batch read scanned
// every spec (BENCHMARKS §26: PUTs at 1,599/s for the first 10,000 names,
// 624/s for the last).
var qBatchSpecs = SQLEach(
	`SELECT name, source, disabled, spec, tenant FROM specs WHERE name IN (SELECT value FROM json_each($1))`,
	`SELECT s.name, s.source, s.disabled, s.spec, s.tenant FROM jsonb_array_elements_text($1::jsonb) AS a(name)
	CROSS JOIN LATERAL (SELECT name, source, disabled, spec, tenant FROM specs
		WHERE specs.name = a.name COLLATE "C" OFFSET 0) s`)

// batchSpecs reads, in one statement, the rows of the specs names; a name
// without a row is absent from the map.
func batchSpecs(tx Tx, names []string) (map[string]storedSpec, error) {
	arg, err := json.Marshal(names)
	if err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	rows, err := tx.Query(qBatchSpecs, string(arg))
	if err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	defer rows.Close()
	m := make(map[string]storedSpec, len(names))
	for rows.Next() {
		var (
			name string
			sp   storedSpec
		)
		if err := rows.Scan(&name, &sp.source, &sp.disabled, &sp.js, &sp.tenant); err != nil {
			return nil, fmt.Errorf("load specs: %w", err)
		}
		m[name] = sp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	return m, nil
}

// refusal is putSpec's refusal of one put (a conflict, a tenant's quota):
// it wrote nothing, and the other puts of its batch go on.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// putSpec puts sp (its stored form js) inside tx, under the spec lock, and
// returns whether it changed anything, whether it created the spec (and
// its jobs), and the names whose certificates changed. A refusal is
// returned before anything is queued.
//
// stored is the spec's row as read before (batchSpecs), or nil to read it
// here.
func putSpec(tx Tx, sp certfleet.CertificateSpec, js string, now time.Time, stored *storedSpecRow) (changed, created bool, touched []string, err error) {
	if stored == nil {
		var row storedSpecRow
		err := tx.QueryRow(qSpec, sp.Name).Scan(&row.source, &row.disabled, &row.js, &row.tenant)
		if err != nil && !noRows(err) {
			return false, false, nil, fmt.Errorf("load spec: %w", err)
		}
		row.exists = err == nil
		stored = &row
	}
	exists, source, disabled, old, tenant := stored.exists, stored.source, stored.disabled, stored.js, stored.tenant
	switch {
	case exists && source == sp.Source && !disabled && old == js && tenant == sp.Tenant:
		return false, false, nil, nil
	case exists && !disabled && tenant != sp.Tenant:
		return false, false, nil, refusal{certfleet.Errorf(certfleet.ECONFLICT, "certificate %q belongs to %s", sp.Name, tenantWord(tenant))}
	}
	if sp.Tenant != "" {
		var held int
		if exists && !disabled {
			held = len(decodedIdentifiers(old))
		}
		if err := checkTenantQuota(tx, sp, held); err != nil {
			if c := certfleet.ErrorCode(err); c == certfleet.EQUOTA || c == certfleet.EINVALID {
				return false, false, nil, refusal{err}
			}
			return false, false, nil, err
		}
	}
	if exists && source != sp.Source && !disabled {
		return false, false, nil, refusal{certfleet.Errorf(certfleet.ECONFLICT, "certificate %q is already declared by source %q", sp.Name, source)}
	}
	var held []certfleet.Identifier // the names it had, for the index
	if !exists {
		tx.Queue(qInsertSpec, sp.Name, sp.Source, false, js, now, sp.Tenant)
		for _, kt := range sp.KeyTypes {
			tx.Queue(qInsertJob, sp.Name, string(kt), sp.Revision(kt), now, false)
		}
	} else {
		jobs, err := loadJobs(tx, sp.Name)
		if err != nil {
			return false, false, nil, err
		}
		tx.Queue(qReenableSpec, sp.Source, js, now, sp.Name, sp.Tenant)
		syncJobs(tx, sp, jobs, now)
		if !disabled {
			held = decodedIdentifiers(old)
		}
	}
	return true, !exists, indexSpec(tx, sp.Name, held, sp.Identifiers), nil
}

// WithdrawSpec implements certfleet.SpecWriter. With destroyKeys the
// private keys of the spec's archive and of its pending orders are erased
// (erasedKey) in the same transaction, and the jobs forget their current
// certificates. It tells every instance (certfleet.Notifier).
func (s *Store) WithdrawSpec(ctx context.Context, name string, destroyKeys bool) error {
	err := s.write(ctx, func(tx Tx) error {
		if err := lockSpecs(tx); err != nil {
			return err
		}
		n, err := tx.Exec(qDisableSpec, s.now(), name)
		if err != nil {
			return fmt.Errorf("disable spec: %w", err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "certificate %q not found", name)
		}
		tx.Queue(qDisableJobsOfSpec, name)
		names, err := unindexSpec(tx, name)
		if err != nil {
			return err
		}
		if err := notifyNames(tx, names); err != nil {
			return err
		}
		if destroyKeys {
			tx.Queue(qEraseIssuanceKeys, erasedKey(), name)
			tx.Queue(qForgetCurrent, erasedKey(), name)
		}
		return tx.Notify()
	})
	if err != nil {
		return fmt.Errorf("withdraw spec %q: %w", name, err)
	}
	return nil
}
