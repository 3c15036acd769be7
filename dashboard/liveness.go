package dashboard

import (
	"context"
	"time"

	"github.com/certfleet/certfleet"
)

// maxHeartbeats is how many schedulers the liveness panel lists.
const maxHeartbeats = 10

// liveView is the schedulers' liveness, on every page: when any scheduler
// sharing the store last looked for due work (certfleet.HeartbeatStore),
// so the page says so when renewals have stopped although it is served.
type liveView struct {
	// Latest is the heartbeat with the latest round; nil when no
	// scheduler ever ran against this store (or within a week).
	Latest *certfleet.Heartbeat
	// Stale: Latest is older than its StaleAfter: no scheduler is
	// looking for work.
	Stale bool
	// Instances are the schedulers heard of, latest first, with their
	// own staleness (a dead one beside a live one is worth a look).
	Instances []instanceView
	// Unsupported: the store keeps no heartbeats.
	Unsupported bool
	// Error: the heartbeats could not be read.
	Error bool
}

type instanceView struct {
	certfleet.Heartbeat
	Stale bool
}

// liveness reads the heartbeats. It never fails the page: a store that
// cannot be read says so where the liveness is shown.
func (s *Server) liveness(ctx context.Context, now time.Time) *liveView {
	hs, ok := s.Store.(certfleet.HeartbeatStore)
	if !ok {
		return &liveView{Unsupported: true}
	}
	hbs, err := hs.Heartbeats(ctx, maxHeartbeats)
	if err != nil {
		s.Logger.Error("dashboard: read the schedulers' heartbeats", certfleet.LogError, err)
		return &liveView{Error: true}
	}
	v := &liveView{}
	for _, h := range hbs {
		v.Instances = append(v.Instances, instanceView{Heartbeat: h, Stale: h.Stale(now)})
	}
	if len(hbs) > 0 {
		v.Latest = &hbs[0]
		v.Stale = hbs[0].Stale(now)
	}
	return v
}
