package sqlstore

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet"
)

var _ certfleet.ReadinessStore = (*Store)(nil)

var (
	qPutWaiting = SQL(`INSERT INTO waiting_names (spec, id_type, id_value, challenge, code, reason, since, checked_at, next_at, tests)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (spec, id_type, id_value) DO UPDATE SET challenge = excluded.challenge, code = excluded.code,
			reason = excluded.reason, since = excluded.since, checked_at = excluded.checked_at,
			next_at = excluded.next_at, tests = excluded.tests`)
	qDeleteWaiting = SQL(`DELETE FROM waiting_names WHERE spec = $1 AND id_type = $2 AND id_value = $3`)
	qWaitingNames  = SQL(`SELECT w.spec, w.id_type, w.id_value, w.challenge, w.code, w.reason, w.since, w.checked_at, w.next_at, w.tests, s.tenant
		FROM waiting_names w JOIN specs s ON s.name = w.spec
		WHERE ($1 = '' OR w.spec = $1) AND ($2 = '' OR s.tenant = $2)
		ORDER BY w.spec, w.id_type, w.id_value`)
	// qSpecWaitingNames is qWaitingNames for one spec ($1 set): its rows
	// by the key, where "$1 = '' OR ..." had SQLite walk every waiting
	// name, on every PUT's status (issue 13).
	qSpecWaitingNames = SQL(`SELECT w.spec, w.id_type, w.id_value, w.challenge, w.code, w.reason, w.since, w.checked_at, w.next_at, w.tests, s.tenant
		FROM waiting_names w JOIN specs s ON s.name = w.spec
		WHERE w.spec = $1 AND ($2 = '' OR s.tenant = $2)
		ORDER BY w.spec, w.id_type, w.id_value`)
	qRetestNow    = SQL(`UPDATE waiting_names SET next_at = $1 WHERE spec = $2`)
	qCountWaiting = SQL(`SELECT code, count(*) FROM waiting_names GROUP BY code`)
)

// SetWaiting implements certfleet.ReadinessStore: one upsert per waiting
// name and one delete per ready one, in one transaction (the drivers'
// migrations/0020_waiting_names.sql). A ready name that was not waiting
// costs a delete that finds nothing.
func (s *Store) SetWaiting(ctx context.Context, spec string, waiting []certfleet.WaitingName, ready []certfleet.Identifier) error {
	if len(waiting) == 0 && len(ready) == 0 {
		return nil
	}
	return s.write(ctx, func(tx Tx) error {
		for _, w := range waiting {
			if _, err := tx.Exec(qPutWaiting, spec, string(w.Identifier.Type), w.Identifier.Value, string(w.Challenge),
				w.Code, w.Reason, w.Since, w.CheckedAt, w.NextAt, w.Tests); err != nil {
				return fmt.Errorf("record waiting name %s of %s: %w", w.Identifier.Value, spec, err)
			}
		}
		for _, id := range ready {
			if _, err := tx.Exec(qDeleteWaiting, spec, string(id.Type), id.Value); err != nil {
				return fmt.Errorf("record ready name %s of %s: %w", id.Value, spec, err)
			}
		}
		return nil
	})
}

// WaitingNames implements certfleet.ReadinessStore.
func (s *Store) WaitingNames(ctx context.Context, f certfleet.WaitingFilter) ([]certfleet.WaitingName, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	stmt := qWaitingNames
	if f.Spec != "" {
		stmt = qSpecWaitingNames
	}
	rows, err := q.Query(stmt, f.Spec, f.Tenant)
	if err != nil {
		return nil, fmt.Errorf("list waiting names: %w", err)
	}
	defer rows.Close()
	var out []certfleet.WaitingName
	for rows.Next() {
		var (
			w         certfleet.WaitingName
			typ, chal string
		)
		if err := rows.Scan(&w.Spec, &typ, &w.Identifier.Value, &chal, &w.Code, &w.Reason, &w.Since, &w.CheckedAt, &w.NextAt, &w.Tests, &w.Tenant); err != nil {
			return nil, fmt.Errorf("list waiting names: %w", err)
		}
		w.Identifier.Type, w.Challenge = certfleet.IdentifierType(typ), certfleet.ChallengeType(chal)
		out = append(out, w)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list waiting names: %w", err)
	}
	return out, nil
}

// RetestNow implements certfleet.ReadinessStore.
func (s *Store) RetestNow(ctx context.Context, spec string) (int, error) {
	now := s.now()
	var n int64
	err := s.write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.Exec(qRetestNow, now, spec)
		if err != nil {
			return fmt.Errorf("re-test waiting names of %s: %w", spec, err)
		}
		return nil
	})
	return int(n), err
}

// CountWaiting implements certfleet.ReadinessStore.
func (s *Store) CountWaiting(ctx context.Context) (map[string]int, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qCountWaiting)
	if err != nil {
		return nil, fmt.Errorf("count waiting names: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			code string
			n    int
		)
		if err := rows.Scan(&code, &n); err != nil {
			return nil, fmt.Errorf("count waiting names: %w", err)
		}
		out[code] = n
	}
	return out, rows.Err()
}
