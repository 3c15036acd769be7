package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/manager"
)

// Serve reads the inventory sources once, writes any outputs that are
// behind, then runs the scheduler (and the sources' reconcilers) until ctx
// ends or a responder fails.
func (d *Daemon) Serve(ctx context.Context) error {
	d.reconcileOnce(ctx) // their certificates known before anything is issued and written
	if err := d.SyncOutputs(ctx); err != nil {
		d.Logger.Warn("some certificate files could not be written; each is tried again on its own schedule (certfleet status shows why and when)", certfleet.LogError, err)
	}
	_ = d.global.Flush(ctx) // logged
	d.global.Debounce(globalQuiet)
	defer d.global.Flush(ctx)
	runCtx, cancel := context.WithCancel(ctx)
	// The helpers below use the store until runCtx ends, and an alert
	// delivery records its outcome after that: Serve returns only once
	// they have, so that Close never closes the store under them.
	var helpers sync.WaitGroup
	defer helpers.Wait()
	defer cancel()
	if d.pprof != "" {
		if err := d.servePprof(runCtx, d.pprof); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- d.Manager.Run(runCtx) }()
	helpers.Go(func() { d.endpoints.run(runCtx) })
	helpers.Go(func() { d.retryDeploys(runCtx) }) // files not written, on their own schedule (deploystate.go)
	helpers.Go(func() { d.watchReadiness(runCtx) })
	helpers.Go(func() { _ = d.Alerts.Run(runCtx) }) // fails only without an Instance, which newAlerts always sets
	for _, r := range d.live.inventory {
		helpers.Go(func() { r.Run(runCtx) })
	}
	if d.Hooks != nil {
		helpers.Go(func() { _ = d.Hooks.Run(runCtx) }) // the same for openHooks
	}
	helpers.Go(func() { d.runExports(runCtx) })  // [export] after_renewal (docs/export.md)
	helpers.Go(func() { d.outputs.Run(runCtx) }) // files of other instances' issuances (issue 16)
	d.Logger.Info("certfleet serving", "certificates", len(d.Config.Certificates), "state", d.Config.State)
	select {
	case err := <-d.Errors():
		cancel()
		<-done
		return err
	case err := <-done:
		d.Logger.Info("certfleet stopped")
		return err
	}
}

// IssueOnce syncs the inventory sources once, writes outputs that are
// behind, then runs one scheduler pass.
func (d *Daemon) IssueOnce(ctx context.Context) (manager.Report, error) {
	d.reconcileOnce(ctx)
	syncErr := d.SyncOutputs(ctx)
	rep, err := d.Manager.RunOnce(ctx)
	if err == nil && syncErr != nil {
		rep.DeployFailed++
		d.Logger.Error("write certificate files", certfleet.LogError, syncErr)
	}
	if gerr := d.global.Flush(ctx); gerr != nil && err == nil {
		rep.DeployFailed++ // logged by flush
	}
	if err == nil {
		// Every certificate in trouble, tried in this pass or waiting
		// for its next try: the pass fails while any is.
		rep.Outstanding, rep.Problems, err = d.outstanding(ctx)
	}
	if err == nil {
		// Names held back by their self-tests: nothing was ordered for
		// them, and the pass fails while any waits (docs/readiness.md).
		if rep.Waiting, err = d.Store.WaitingNames(ctx, certfleet.WaitingFilter{}); err != nil {
			err = fmt.Errorf("list the names waiting for their self-test: %w", err)
		}
	}
	return rep, err
}

// SyncOutputs writes every configured certificate's current issuance (and
// every inventory certificate's) to its output directory, if the files
// differ (after a crash between issuing and writing, or when files were
// changed by hand). It returns the first error.
func (d *Daemon) SyncOutputs(ctx context.Context) error {
	var first error
	fd := d.Manager.Deployer.(*fileDeployer)
	for _, c := range d.live.certificates() {
		if c.Output.Dir == "" && len(c.Output.Copies) == 0 {
			continue
		}
		for _, kt := range c.Spec.KeyTypes {
			job, err := d.Store.Job(ctx, certfleet.JobKey{Spec: c.Spec.Name, KeyType: kt})
			if err != nil || job.CurrentID == 0 {
				continue
			}
			iss, err := d.Store.Issuance(ctx, job.CurrentID)
			if err != nil {
				first = cmp(first, fmt.Errorf("certificate %s (%s): load issuance %d: %w", c.Spec.Name, kt, job.CurrentID, err))
				continue
			}
			if err := fd.Deploy(ctx, c.Spec, iss); err != nil { // logged and recorded by the deployer
				first = cmp(first, err)
			}
		}
	}
	return first
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// AlertRound runs one round of the alert evaluator after a one-shot pass
// (certfleet issue; Serve runs them continuously): it opens, worsens or
// resolves incidents and sends what is owed; then it sends the events
// owed to hooks (HookRound). A notification or event that cannot be
// delivered stays owed and is an error, so that cron's own mail is the
// fallback.
func (d *Daemon) AlertRound(ctx context.Context) (alert.Report, error) {
	if d.Alerts == nil {
		return alert.Report{}, nil
	}
	rep, err := d.Alerts.Round(ctx)
	switch {
	case err != nil:
		err = fmt.Errorf("the alert round after the pass failed: %w", err)
	case rep.Failed > 0:
		err = fmt.Errorf("%d alert notification(s) could not be delivered (they stay owed; see the log and `certfleet status -config %s`)", rep.Failed, d.Config.File)
	}
	_, herr := d.HookRound(ctx)
	return rep, errors.Join(err, herr)
}

// outstanding lists the jobs failing or not written, with the ACME problem
// type of each failing one's newest attempt.
func (d *Daemon) outstanding(ctx context.Context) ([]certfleet.Job, map[certfleet.JobKey]string, error) {
	jobs, err := d.Store.Jobs(ctx, certfleet.JobFilter{Failing: true})
	if err != nil {
		return nil, nil, fmt.Errorf("list the certificates failing or not written: %w", err)
	}
	problems := make(map[certfleet.JobKey]string)
	for _, j := range jobs {
		if j.Failures == 0 {
			continue
		}
		atts, err := d.Store.Attempts(ctx, j.JobKey, 1)
		if err != nil {
			return nil, nil, fmt.Errorf("attempts of %s: %w", j.JobKey, err)
		}
		if len(atts) > 0 && atts[0].ProblemType != "" {
			problems[j.JobKey] = atts[0].ProblemType
		}
	}
	return jobs, problems, nil
}
