package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

// Deployment is part of a certificate's state (issue 15): every write of
// an issuance records its outcome in the job (certfleet.DeployState), and
// files that could not be written are tried again on their own schedule
// (deployRetryTick, with a backoff per job), not only after the next
// issuance.

// deployRetryTick is how often serve looks for files due to be written
// again; the backoff of each job (deployBackoff) decides which are due.
const deployRetryTick = 15 * time.Second

// deployBackoffMax caps the wait between two tries to write a
// certificate's files: an owner created or a directory fixed by hand is
// picked up within the hour even after days of failures.
const deployBackoffMax = time.Hour

// deployBackoff is the wait after the failures-th failed write in a row.
func deployBackoff(failures int) time.Duration {
	return min(certfleet.Backoff(failures, certfleet.RandFloat()), deployBackoffMax)
}

func (f *fileDeployer) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

// record stores the outcome err of writing key's current issuance. A write
// that succeeds changes the store only when the job was recorded as not
// written, so that a pass over unchanged files writes nothing.
func (f *fileDeployer) record(ctx context.Context, key certfleet.JobKey, err error) {
	if f.store == nil {
		return
	}
	job, jerr := f.store.Job(ctx, key)
	if jerr != nil {
		return // a certificate without a job (cannot happen for an issuance) has no state to keep
	}
	if err == nil {
		if !job.Deploy.NotWritten() {
			return
		}
		if serr := f.store.SetDeployState(ctx, key, certfleet.DeployState{}); serr != nil {
			f.log.Error("record that the certificate files are written", certfleet.LogCertificate, key.Spec, certfleet.LogError, serr)
			return
		}
		f.log.Info("certificate files written after failing", certfleet.LogCertificate, key.Spec, certfleet.LogKeyType, string(key.KeyType),
			"failures", job.Deploy.Failures, "last error", job.Deploy.Error)
		return
	}
	now := f.clock()
	d := certfleet.DeployState{Error: err.Error(), FailedAt: now, NextAt: now.Add(deployBackoff(job.Deploy.Failures + 1))}
	if serr := f.store.SetDeployState(ctx, key, d); serr != nil {
		f.log.Error("record that the certificate files could not be written", certfleet.LogCertificate, key.Spec, certfleet.LogError, serr)
		return
	}
	f.log.Warn("certificate files not written; will try again", certfleet.LogCertificate, key.Spec, certfleet.LogKeyType, string(key.KeyType),
		certfleet.LogError, err, "failures", job.Deploy.Failures+1, certfleet.LogNextAt, d.NextAt)
}

// retryDeploys writes, every deployRetryTick until ctx ends, the files of
// each certificate not written whose next try has come.
func (d *Daemon) retryDeploys(ctx context.Context) {
	t := time.NewTicker(deployRetryTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := d.RetryDeploys(ctx); err != nil && ctx.Err() == nil {
			d.Logger.Warn("retry writing certificate files", certfleet.LogError, err)
		}
	}
}

// RetryDeploys writes the files of every certificate recorded as not
// written whose next try (DeployState.NextAt) has come, and returns how
// many it tried; the outcome of each is recorded in its deploy state. A
// certificate no longer configured has nothing to write: its state is
// cleared.
func (d *Daemon) RetryDeploys(ctx context.Context) (int, error) {
	fd := d.Manager.Deployer.(*fileDeployer)
	jobs, err := d.Store.Jobs(ctx, certfleet.JobFilter{NotWritten: true})
	if err != nil {
		return 0, fmt.Errorf("list certificates not written: %w", err)
	}
	now, tried := fd.clock(), 0
	for _, j := range jobs {
		if j.Deploy.NextAt.After(now) || j.CurrentID == 0 {
			continue
		}
		c, ok := d.live.certificate(j.Spec)
		if !ok {
			fd.record(ctx, j.JobKey, nil)
			continue
		}
		iss, err := d.Store.Issuance(ctx, j.CurrentID)
		if err != nil {
			return tried, fmt.Errorf("certificate %s (%s): load issuance %d: %w", j.Spec, j.KeyType, j.CurrentID, err)
		}
		tried++
		_ = fd.Deploy(ctx, c.Spec, iss) // recorded (and logged) by record
	}
	return tried, nil
}
