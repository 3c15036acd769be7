package manager

// Leases: the owner name an instance leases jobs under, keeping a job's
// lease while it is worked on, and releasing the leases of a dead process.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// DefaultInstance returns a lease-owner name unique to this process:
// hostname, pid and a random suffix (a restarted process is a new owner, so
// it never mistakes a dead predecessor's lease for its own).
func DefaultInstance() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ParseInstance splits a lease owner made by DefaultInstance into its host
// name and process ID; ok is false for other owner names.
func ParseInstance(owner string) (host string, pid int, ok bool) {
	i := strings.LastIndex(owner, "-")
	if i <= 0 {
		return "", 0, false
	}
	rest := owner[:i]
	j := strings.LastIndex(rest, "-")
	if j <= 0 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(rest[j+1:])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return rest[:j], pid, true
}

// ReleaseLeases gives up the leases held by owners for which dead reports
// true (e.g. processes on this host that no longer exist, after a kill -9),
// so their work resumes at once instead of after the lease expires. It
// returns how many leases it released.
func (m *Manager) ReleaseLeases(ctx context.Context, dead func(owner string) bool) (int, error) {
	m.init()
	jobs, err := m.Store.Jobs(ctx, certfleet.JobFilter{Leased: true})
	if err != nil {
		return 0, fmt.Errorf("list jobs: %w", err)
	}
	n := 0
	now := m.Now()
	for _, j := range jobs {
		if j.LeaseOwner == "" || j.LeaseOwner == m.Instance || !j.LeaseUntil.After(now) || !dead(j.LeaseOwner) {
			continue
		}
		err := m.Store.ReleaseLease(ctx, j.JobKey, j.LeaseOwner)
		if certfleet.ErrorCode(err) == certfleet.ELEASELOST {
			continue // taken over meanwhile
		} else if err != nil {
			return n, fmt.Errorf("release lease of %s held by %s: %w", j.JobKey, j.LeaseOwner, err)
		}
		m.Logger.Info("released the lease of a process that is gone", certfleet.LogCertificate, j.Spec,
			certfleet.LogKeyType, string(j.KeyType), "owner", j.LeaseOwner)
		n++
	}
	return n, nil
}

// keepLease extends the job's lease every Heartbeat until stopped, also
// while the job's outcome waits for the store (save); when the store says
// the lease is lost, it cancels the work with that error. A store that
// cannot be reached is logged when the heartbeats start failing and when
// they succeed again, not at every beat. stop may be called more than once.
func (m *Manager) keepLease(ctx context.Context, key certfleet.JobKey, cancel context.CancelCauseFunc, log *slog.Logger) (stop func()) {
	stopped := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(m.Heartbeat)
		defer t.Stop()
		failing := 0
		for {
			select {
			case <-stopped:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				tctx, tcancel := context.WithTimeout(ctx, m.Lease)
				err := m.Store.ExtendLease(tctx, key, m.Instance, m.Now().Add(m.Lease))
				tcancel()
				switch {
				case certfleet.ErrorCode(err) == certfleet.ELEASELOST:
					cancel(err)
					return
				case err != nil && ctx.Err() == nil:
					if failing == 0 {
						log.Warn("cannot extend the lease; retrying at every heartbeat", certfleet.LogError, err, "heartbeat", m.Heartbeat)
					}
					failing++
				case err == nil && failing > 0:
					log.Info("lease extended again", "failed_heartbeats", failing)
					failing = 0
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stopped) }); <-finished }
}
