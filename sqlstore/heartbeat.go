package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.HeartbeatStore = (*Store)(nil)

var (
	qPutHeartbeat = SQL(`INSERT INTO heartbeats (instance, started_at, round_at, interval_ms, error) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (instance) DO UPDATE SET started_at = excluded.started_at, round_at = excluded.round_at,
			interval_ms = excluded.interval_ms, error = excluded.error`)
	qForgetHeartbeats = SQL(`DELETE FROM heartbeats WHERE round_at < $1`)
	qHeartbeats       = SQL(`SELECT instance, started_at, round_at, interval_ms, error FROM heartbeats ORDER BY round_at DESC, instance LIMIT $1`)
)

// PutHeartbeat implements certfleet.HeartbeatStore.
func (s *Store) PutHeartbeat(ctx context.Context, h certfleet.Heartbeat) error {
	if h.Instance == "" || h.RoundAt.IsZero() {
		return certfleet.Errorf(certfleet.EINVALID, "heartbeat: an instance name and a round time are required")
	}
	started := h.StartedAt
	if started.IsZero() {
		started = h.RoundAt
	}
	err := s.write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(qPutHeartbeat, h.Instance, started, h.RoundAt, h.Interval.Milliseconds(), h.Error); err != nil {
			return err
		}
		_, err := tx.Exec(qForgetHeartbeats, h.RoundAt.Add(-certfleet.HeartbeatForget))
		return err
	})
	if err != nil {
		return fmt.Errorf("store heartbeat of %s: %w", h.Instance, err)
	}
	return nil
}

// Heartbeats implements certfleet.HeartbeatStore.
func (s *Store) Heartbeats(ctx context.Context, limit int) ([]certfleet.Heartbeat, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qHeartbeats, limit)
	if err != nil {
		return nil, fmt.Errorf("list heartbeats: %w", err)
	}
	defer rows.Close()
	var out []certfleet.Heartbeat
	for rows.Next() {
		var (
			h  certfleet.Heartbeat
			ms int64
		)
		if err := rows.Scan(&h.Instance, &h.StartedAt, &h.RoundAt, &ms, &h.Error); err != nil {
			return nil, fmt.Errorf("list heartbeats: %w", err)
		}
		h.Interval = time.Duration(ms) * time.Millisecond
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list heartbeats: %w", err)
	}
	return out, nil
}
