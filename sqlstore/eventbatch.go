package sqlstore

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet"
)

var _ certfleet.EventBatchSink = (*Store)(nil)

// eventBatch bounds the events of one transaction, so that a batch of
// 100,000 neither holds SQLite's write lock for long nor builds one huge
// PostgreSQL pipeline.
const eventBatch = 5000

// RecordEvents implements certfleet.EventBatchSink: every event is checked
// first (PrepareEvent; a bad one records none), then they are appended in
// transactions of eventBatch, in order.
func (s *Store) RecordEvents(ctx context.Context, events []certfleet.Event) error {
	prepared := make([]certfleet.Event, len(events))
	now := s.now()
	for i, e := range events {
		p, err := certfleet.PrepareEvent(e, now)
		if err != nil {
			return err
		}
		prepared[i] = p
	}
	for start := 0; start < len(prepared); start += eventBatch {
		chunk := prepared[start:min(start+eventBatch, len(prepared))]
		err := s.write(ctx, func(tx Tx) error {
			for _, e := range chunk {
				tx.Queue(qInsertEvent, e.At, e.Kind, e.Actor, certfleet.ActorType(e.Actor), e.Remote,
					e.Certificate, string(e.KeyType), e.Serial, e.IssuanceID, e.Reason, e.Detail)
			}
			return nil // queued statements run before the commit
		})
		if err != nil {
			return fmt.Errorf("record %d events: %w", len(chunk), err)
		}
	}
	return nil
}
