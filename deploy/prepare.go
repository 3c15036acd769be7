package deploy

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/certfleet/certfleet"
)

// Hooks are what runs around one certificate's order, in this order:
// the Prepare commands, then the Helpers (each started and awaited until
// ready), the order, the Helpers stopped, the Cleanup commands.
type Hooks struct {
	// Prepare commands run to completion, in order, each bounded by
	// DefaultTimeout (open a firewall port).
	Prepare [][]string
	// Helpers keep running while the order is validated (a forwarder
	// of /.well-known/acme-challenge/ from another host).
	Helpers []Helper
	// Cleanup commands run after the order ended, issued or failed.
	Cleanup [][]string
}

// Prepare runs the prepare commands of spec and starts its helpers before
// an order, and returns the function that stops the helpers and then runs
// the cleanup commands (on a context of their own, bounded by
// CleanupTimeout; failures are logged). A failing prepare command, or a
// helper that exits or is not ready in time, stops the helpers already
// started and runs the cleanup at once, to undo what came before, and
// returns the error (with the tail of the command's output). Commands and
// helpers get the inherited environment (less certfleet.SecretEnv) plus
// CERTFLEET_CERTIFICATE, CERTFLEET_NAMES (space-separated) and
// CERTFLEET_NAME (the first identifier; for a helper started per name,
// its own). With print set (test mode), all are printed instead of run.
// It returns a nil function when there is nothing to run.
//
// The orders of one certificate that run at once (its key types) share
// its helpers: the first starts them, the last to finish stops them.
//
// If certfleet is killed while helpers run, Linux sends each helper
// SIGTERM; their children, and helpers elsewhere, are stopped at the next
// start by StopLeftHelpers (with StateDir set).
func (w *Writer) Prepare(ctx context.Context, spec certfleet.CertificateSpec, h Hooks, print io.Writer) (func(), error) {
	if len(h.Prepare) == 0 && len(h.Helpers) == 0 && len(h.Cleanup) == 0 {
		return nil, nil
	}
	if print != nil {
		PrintSkipped(print, spec.Name+" (prepare)", h.Prepare)
		helpers := make([][]string, len(h.Helpers))
		for i, hp := range h.Helpers {
			helpers[i] = hp.Argv
		}
		PrintSkipped(print, spec.Name+" (prepare helper)", helpers)
		return func() { PrintSkipped(print, spec.Name+" (cleanup)", h.Cleanup) }, nil
	}
	names := certfleet.IdentifierValues(spec.Identifiers)
	first := ""
	if len(names) > 0 {
		first = names[0]
	}
	env := certfleet.ChildEnv(os.Environ(),
		"CERTFLEET_CERTIFICATE="+spec.Name,
		"CERTFLEET_NAMES="+strings.Join(names, " "),
	)
	runCleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
		defer cancel()
		cenv := append(env[:len(env):len(env)], "CERTFLEET_NAME="+first)
		for _, argv := range h.Cleanup {
			if r := w.RunCommand(cctx, argv, cenv, "", 0); r.Err != nil {
				w.logger().Error("cleanup command failed", certfleet.LogCertificate, spec.Name, certfleet.LogError, r.Err)
			}
		}
	}
	penv := append(env[:len(env):len(env)], "CERTFLEET_NAME="+first)
	for _, argv := range h.Prepare {
		if r := w.RunCommand(ctx, argv, penv, "", 0); r.Err != nil {
			runCleanup()
			return nil, r.Err
		}
	}
	release, err := w.acquireHelpers(ctx, spec, h.Helpers, env)
	if err != nil {
		runCleanup()
		return nil, err
	}
	return func() {
		release()
		runCleanup()
	}, nil
}

// helperSet is the helpers of one certificate, shared by its orders that
// run at once (one per key type of a dual certificate: a forwarder bound
// to the CA's port cannot be started twice).
type helperSet struct {
	refs    int           // orders using it; guarded by Writer.mu
	started chan struct{} // closed once running and err are set
	running []*runningHelper
	err     error
}

// acquireHelpers starts the helpers of spec, or joins those another order
// of spec started, and returns the function that lets go of them: the
// last order to let go stops them.
func (w *Writer) acquireHelpers(ctx context.Context, spec certfleet.CertificateSpec, helpers []Helper, env []string) (release func(), err error) {
	if len(helpers) == 0 {
		return func() {}, nil
	}
	w.mu.Lock()
	s, joined := w.helpers[spec.Name]
	if joined {
		s.refs++
	} else {
		if w.helpers == nil {
			w.helpers = make(map[string]*helperSet)
		}
		s = &helperSet{refs: 1, started: make(chan struct{})}
		w.helpers[spec.Name] = s
	}
	w.mu.Unlock()
	release = func() { w.releaseHelpers(spec.Name, s) }
	if joined {
		select {
		case <-s.started:
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		}
	} else {
		s.running, s.err = w.startHelpers(ctx, spec, helpers, env)
		close(s.started)
	}
	if s.err != nil {
		release()
		return nil, s.err
	}
	return release, nil
}

func (w *Writer) releaseHelpers(name string, s *helperSet) {
	w.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last && w.helpers[name] == s {
		delete(w.helpers, name)
	}
	w.mu.Unlock()
	if last {
		<-s.started
		stopHelpers(s.running)
	}
}
