package deploy

// Prepare helpers: long-running prepare commands (a forwarder of
// /.well-known/acme-challenge/, an ssh session, a firewall opener) that are
// started before an order, awaited until ready, kept running while the CA
// validates, and stopped when the order has ended.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/process"
)

// Defaults for Helper.
const (
	// DefaultReadyTimeout bounds the wait for a helper to be ready: an ssh
	// session that has not connected in 30 s will not.
	DefaultReadyTimeout = 30 * time.Second
	// DefaultStopGrace is how long a helper has to exit after SIGTERM
	// before its process group is killed: enough for ssh to tear down its
	// forwards, short enough not to hold up the deployment.
	DefaultStopGrace = 5 * time.Second
)

// readyPoll is how often Helper.Ready is called while a helper is not yet
// ready: quick enough that an order is not delayed noticeably, slow enough
// not to hammer the port being probed.
const readyPoll = 100 * time.Millisecond

// Helper is a long-running prepare command: started before the order,
// awaited until ready, kept running through validation, and stopped
// (SIGTERM to its process group, SIGKILL after StopGrace) when the order
// has ended, issued or failed. It runs without a shell, in its own process
// group, with the environment of the prepare commands plus CERTFLEET_NAME,
// the identifier it is started for.
type Helper struct {
	// Argv is the command. Required.
	Argv []string
	// PerName starts one helper per identifier of the certificate, each
	// with its own CERTFLEET_NAME (lematt's prepare, which runs once per
	// domain); false starts one, with the first identifier.
	PerName bool
	// ReadyLine, when set, makes the helper ready once a line it writes to
	// stdout matches.
	ReadyLine *regexp.Regexp
	// Ready, when set, is called every 100 ms, with the identifier the
	// helper is for, until it returns nil: then the helper is ready (a
	// port opens, a URL answers). Each call must return within a few
	// seconds and honour ctx.
	Ready func(ctx context.Context, name string) error
	// ReadyDescription says what Ready waits for, in errors ("port
	// 127.0.0.1:80 open"). Optional.
	ReadyDescription string
	// ReadyTimeout bounds the wait for readiness (both checks, when both
	// are set; none set: ready once started). Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopGrace is how long the helper has to exit after SIGTERM. Default
	// DefaultStopGrace.
	StopGrace time.Duration
}

// runningHelper is one started helper.
type runningHelper struct {
	argv    []string
	name    string // the identifier it was started for
	cmd     *exec.Cmd
	out     *process.Tail // stdout and stderr, last few KiB
	lines   *lineWatcher
	exited  chan struct{} // closed once it was reaped and its output drained
	waitErr error         // written before exited is closed
	record  string        // its record file ("" when not recorded)
	grace   time.Duration
	started time.Time
	log     func(msg string, args ...any)

	mu       sync.Mutex // guards stopping
	stopping bool
}

// startHelpers starts every helper of hooks for spec, each awaited until
// ready before the next starts. On failure the ones started are stopped
// and the error says which one failed and why.
func (w *Writer) startHelpers(ctx context.Context, spec certfleet.CertificateSpec, helpers []Helper, env []string) ([]*runningHelper, error) {
	var running []*runningHelper
	names := certfleet.IdentifierValues(spec.Identifiers)
	for i, h := range helpers {
		if len(h.Argv) == 0 || h.Argv[0] == "" {
			stopHelpers(running)
			return nil, certfleet.Errorf(certfleet.EINVALID, "prepare helper %d of %s is empty", i+1, spec.Name)
		}
		for j, name := range names {
			if j > 0 && !h.PerName {
				break
			}
			r, err := w.startHelper(ctx, spec.Name, h, name, append(env[:len(env):len(env)], "CERTFLEET_NAME="+name))
			if err != nil {
				stopHelpers(running)
				return nil, err
			}
			running = append(running, r)
		}
	}
	return running, nil
}

// startHelper starts one helper and waits until it is ready.
func (w *Writer) startHelper(ctx context.Context, cert string, h Helper, name string, env []string) (*runningHelper, error) {
	log := w.logger().With(certfleet.LogCertificate, cert, certfleet.LogCommand, formatArgv(h.Argv), "name", name)
	r := &runningHelper{
		argv: h.Argv, name: name, out: process.NewTail(outputTail), exited: make(chan struct{}),
		grace: orDefault(h.StopGrace, DefaultStopGrace),
	}
	r.lines = &lineWatcher{re: h.ReadyLine, tail: r.out, matched: make(chan struct{})}
	cmd := exec.Command(h.Argv[0], h.Argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = r.lines, r.out
	cmd.WaitDelay = process.WaitDelay
	helperProcAttr(cmd)
	r.cmd = cmd

	started := make(chan error, 1)
	go func() {
		// On Linux the helper gets SIGTERM when the thread that started
		// it exits (Pdeathsig: certfleet killed). Go may end an unlocked
		// thread at any time, so this goroutine keeps its thread until
		// the helper has been reaped.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		r.waitErr = cmd.Wait()
		close(r.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("prepare helper %s for %s: %w", formatArgv(h.Argv), name, err)
	}
	r.started = time.Now()
	pid := cmd.Process.Pid
	r.log = func(msg string, args ...any) { log.Info(msg, append([]any{"pid", pid}, args...)...) }
	if w.StateDir != "" {
		path, err := recordHelper(w.StateDir, cert, h.Argv, pid, r.grace)
		if err != nil {
			// Without its record a helper could outlive a killed
			// certfleet unnoticed: do not run it.
			r.stop()
			return nil, fmt.Errorf("prepare helper %s for %s: %w", formatArgv(h.Argv), name, err)
		}
		r.record = path
	}
	r.log("prepare helper started")
	if err := r.awaitReady(ctx, h); err != nil {
		r.stop()
		return nil, err
	}
	r.log("prepare helper ready", "after", time.Since(r.started).Round(time.Millisecond))
	go func() {
		<-r.exited
		r.mu.Lock()
		stopping := r.stopping
		r.mu.Unlock()
		if !stopping {
			log.Warn("prepare helper exited while the order ran; validation through it will fail",
				"pid", pid, certfleet.LogError, r.exitError(), "output", strings.TrimSpace(r.out.String()))
		}
	}()
	return r, nil
}

// awaitReady waits until both of h's checks passed, the helper exited, the
// timeout expired or ctx ended.
func (r *runningHelper) awaitReady(ctx context.Context, h Helper) error {
	timeout := orDefault(h.ReadyTimeout, DefaultReadyTimeout)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lineOK := h.ReadyLine == nil
	probeOK := h.Ready == nil
	var probeErr error
	matched := r.lines.matched
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	probe := func() {
		if probeErr = h.Ready(rctx, r.name); probeErr == nil {
			probeOK = true
		}
	}
	if !probeOK {
		probe()
	}
	for !lineOK || !probeOK {
		select {
		case <-matched:
			lineOK = true
			matched = nil // a closed channel would spin this loop
		case <-tick.C:
			if !probeOK {
				probe()
			}
		case <-r.exited:
			return r.failure("exited before it was ready: " + r.exitError().Error())
		case <-rctx.Done():
			if ctx.Err() != nil {
				return r.failure("not ready when the attempt was cancelled: " + ctx.Err().Error())
			}
			var waited []string
			if !lineOK {
				waited = append(waited, fmt.Sprintf("a line on stdout matching %q", h.ReadyLine.String()))
			}
			if !probeOK {
				what := orDefault(h.ReadyDescription, "its readiness check")
				if probeErr != nil {
					what += " (last: " + probeErr.Error() + ")"
				}
				waited = append(waited, what)
			}
			return r.failure(fmt.Sprintf("not ready after %s: no %s", timeout, strings.Join(waited, ", nor ")))
		}
	}
	return nil
}

// failure is the error of a helper that did not get ready, with the tail
// of its output.
func (r *runningHelper) failure(why string) error {
	msg := fmt.Sprintf("prepare helper %s for %s: %s", formatArgv(r.argv), r.name, why)
	if out := strings.TrimSpace(r.out.String()); out != "" {
		msg += "; output: " + out
	}
	return errors.New(msg)
}

// exitError describes how the helper ended; call after exited is closed.
func (r *runningHelper) exitError() error {
	if r.waitErr == nil {
		return errors.New("exit status 0")
	}
	return r.waitErr
}

// stop ends the helper's process group: SIGTERM, then SIGKILL after the
// grace period to whatever is left (also its children that outlived it),
// and removes its record. It returns once the group is gone, or a few
// seconds after SIGKILL if something cannot be killed.
func (r *runningHelper) stop() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	pid := r.cmd.Process.Pid
	how := stopGroup(pid, r.grace, r.exited)
	select {
	case <-r.exited:
	case <-time.After(process.WaitDelay + time.Second):
	}
	if r.record != "" {
		if err := os.Remove(r.record); err == nil || errors.Is(err, os.ErrNotExist) {
			r.record = ""
		}
	}
	if r.log != nil {
		r.log("prepare helper stopped", "how", how, "ran", time.Since(r.started).Round(time.Millisecond))
	}
}

// stopHelpers stops helpers, all at once (each has its grace period), in
// reverse start order for the signals.
func stopHelpers(hs []*runningHelper) {
	var wg sync.WaitGroup
	for i := len(hs) - 1; i >= 0; i-- {
		wg.Go(hs[i].stop)
	}
	wg.Wait()
}

// stopGroup sends SIGTERM to process group pgid, waits up to grace for it
// to be gone, then sends SIGKILL and waits a little more. exited, when not
// nil, is closed when the group's leader (our child) was reaped. It says
// how the group ended.
func stopGroup(pgid int, grace time.Duration, exited <-chan struct{}) string {
	if !groupAlive(pgid) {
		return "had exited"
	}
	signalGroup(pgid, syscall.SIGTERM)
	if waitGroupGone(pgid, grace, exited) {
		return "SIGTERM"
	}
	signalGroup(pgid, syscall.SIGKILL)
	waitGroupGone(pgid, 5*time.Second, exited)
	return "SIGKILL after " + grace.String()
}

// waitGroupGone polls until process group pgid has no process left, or
// for d; it reports whether the group is gone.
func waitGroupGone(pgid int, d time.Duration, exited <-chan struct{}) bool {
	deadline := time.Now().Add(d)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-exited:
			exited = nil // the leader was reaped; members may remain
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lineWatcher is a helper's stdout: every byte goes to tail, and the first
// complete line matching re closes matched.
type lineWatcher struct {
	re      *regexp.Regexp
	tail    *process.Tail
	matched chan struct{}

	mu      sync.Mutex // guards partial, done
	partial []byte     // the current line so far (bounded)
	done    bool       // matched is closed
}

func (l *lineWatcher) Write(p []byte) (int, error) {
	l.tail.Write(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done || l.re == nil {
		return len(p), nil
	}
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(l.partial) < outputTail {
				l.partial = append(l.partial, rest[:min(len(rest), outputTail-len(l.partial))]...)
			}
			break
		}
		line := append(l.partial, rest[:i]...)
		l.partial = l.partial[:0]
		rest = rest[i+1:]
		if l.re.Match(bytes.TrimRight(line, "\r")) {
			l.done = true
			close(l.matched)
			break
		}
	}
	return len(p), nil
}
