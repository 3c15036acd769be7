package sqlstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.InventoryStore = (*Store)(nil)

var (
	qPendingWithdrawals     = SQL(`SELECT name, missing_since FROM inventory_pending WHERE source = $1`)
	qClearPendingWithdrawal = SQL(`DELETE FROM inventory_pending WHERE source = $1`)
	qAddPendingWithdrawal   = SQL(`INSERT INTO inventory_pending (source, name, missing_since) VALUES ($1, $2, $3)`)
)

// PendingWithdrawals implements certfleet.InventoryStore.
func (s *Store) PendingWithdrawals(ctx context.Context, source string) (map[string]time.Time, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qPendingWithdrawals, source)
	if err != nil {
		return nil, fmt.Errorf("load pending withdrawals of %s: %w", source, err)
	}
	defer rows.Close()
	out := make(map[string]time.Time)
	for rows.Next() {
		var (
			name  string
			since time.Time
		)
		if err := rows.Scan(&name, &since); err != nil {
			return nil, fmt.Errorf("load pending withdrawals of %s: %w", source, err)
		}
		out[name] = since
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load pending withdrawals of %s: %w", source, err)
	}
	return out, nil
}

// SetPendingWithdrawals implements certfleet.InventoryStore: the source's
// rows are replaced in one transaction.
func (s *Store) SetPendingWithdrawals(ctx context.Context, source string, pending map[string]time.Time) error {
	if source == "" {
		return certfleet.Errorf(certfleet.EINVALID, "set pending withdrawals: source required")
	}
	names := slices.Sorted(maps.Keys(pending)) // one order for every instance: no deadlocks
	err := s.write(ctx, func(tx Tx) error {
		tx.Queue(qClearPendingWithdrawal, source)
		for _, name := range names {
			tx.Queue(qAddPendingWithdrawal, source, name, pending[name])
		}
		return nil // queued statements run before the commit
	})
	if err != nil {
		return fmt.Errorf("set pending withdrawals of %s: %w", source, err)
	}
	return nil
}
