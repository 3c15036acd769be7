package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
)

var _ certfleet.RateLimitStore = (*Store)(nil)

// DeferJob implements certfleet.RateLimitStore. An attempt with an empty
// Outcome is recorded as certfleet.OutcomeDeferred.
func (s *Store) DeferJob(ctx context.Context, key certfleet.JobKey, owner string, a certfleet.Attempt, nextAt time.Time) error {
	a, err := storeutil.PrepareJobAttempt("defer", key, a, certfleet.OutcomeDeferred, nextAt, s.now())
	if err != nil {
		return err
	}
	if err := s.fencedAttempt(ctx, key, owner, a, `UPDATE jobs SET next_at = ?, lease_owner = '', lease_until = NULL WHERE id = ?`,
		tsReq(nextAt)); err != nil {
		return fmt.Errorf("defer job %s: %w", key, err)
	}
	return nil
}
