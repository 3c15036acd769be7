package deploy

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// CleanupTimeout bounds the commands that run on a context of their own
// because the caller's may be cancelled (shutdown): an order's cleanup
// commands, and a batch's commands.
const CleanupTimeout = 2 * time.Minute

// Batch collects the certificates whose files changed and runs one set of
// commands once per batch of them (the [deploy] commands: one reload of the
// load balancer after a renewal wave, not one per certificate). A batch
// ends at Flush, or, after Debounce, when no file changed for a while.
//
// The commands run in order, without a shell, with the environment of the
// last certificate noted plus CERTFLEET_CHANGED (the names, space
// separated); the Writer's logger gets a line per batch run, and the
// failure. It is safe for concurrent use.
type Batch struct {
	// Writer runs the commands. Required.
	Writer *Writer
	// Commands returns the commands in force, read at each flush (a
	// reload may change them). Nil runs none.
	Commands func() [][]string
	// Print, when set (test mode), receives the commands instead of
	// running them (see PrintSkipped).
	Print io.Writer

	mu      sync.Mutex    // guards the fields below
	changed []string      // names, in order of change, without repeats
	lastEnv []string      // the environment of the last changed certificate
	quiet   time.Duration // 0: batches end at Flush only
	timer   *time.Timer
}

// Note records a certificate whose files changed, with the environment its
// own commands got.
func (b *Batch) Note(name string, env []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Contains(b.changed, name) {
		b.changed = append(b.changed, name)
	}
	b.lastEnv = env
	if b.quiet > 0 {
		if b.timer != nil {
			b.timer.Stop()
		}
		b.timer = time.AfterFunc(b.quiet, func() { b.Flush(context.Background()) })
	}
}

// Debounce makes batches end after quiet without a change, besides at
// Flush (a daemon; a one-shot pass flushes at its end instead).
func (b *Batch) Debounce(quiet time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.quiet = quiet
}

// Flush runs the commands for the batch so far, if any certificate
// changed, and reports the first failure (also logged). The commands run
// on a context of their own, bounded by CleanupTimeout.
func (b *Batch) Flush(ctx context.Context) error {
	b.mu.Lock()
	changed, env := b.changed, b.lastEnv
	b.changed, b.lastEnv = nil, nil
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
	var cmds [][]string
	if b.Commands != nil {
		cmds = b.Commands()
	}
	if len(changed) == 0 || len(cmds) == 0 {
		return nil
	}
	list := strings.Join(changed, " ")
	if b.Print != nil {
		PrintSkipped(b.Print, "[deploy] ("+list+")", cmds)
		return nil
	}
	if env == nil {
		env = certfleet.ChildEnv(os.Environ())
	}
	env = append(slices.Clip(env), "CERTFLEET_CHANGED="+list)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	log := b.Writer.logger()
	for _, argv := range cmds {
		if r := b.Writer.RunCommand(cctx, argv, env, "", 0); r.Err != nil {
			err := fmt.Errorf("[deploy] commands after %s: %w", list, r.Err)
			log.Error("deploy command failed", certfleet.LogError, err)
			return err
		}
	}
	log.Info("[deploy] commands ran", "changed", list)
	return nil
}

// Prepare runs the prepare commands of spec before an order and returns the
// function that runs its cleanup commands (on a context of their own,
// bounded by CleanupTimeout; failures are logged). A failing prepare
// command runs the cleanup at once, to undo what the commands before it
// did, and returns the command's error. Both get the inherited environment
// (less certfleet.SecretEnv) plus CERTFLEET_CERTIFICATE and CERTFLEET_NAMES.
// With print set (test mode), both are printed instead of run. It returns a
// nil function when there is nothing to run.
func (w *Writer) Prepare(ctx context.Context, spec certfleet.CertificateSpec, prepare, cleanup [][]string, print io.Writer) (func(), error) {
	if len(prepare) == 0 && len(cleanup) == 0 {
		return nil, nil
	}
	if print != nil {
		PrintSkipped(print, spec.Name+" (prepare)", prepare)
		return func() { PrintSkipped(print, spec.Name+" (cleanup)", cleanup) }, nil
	}
	env := certfleet.ChildEnv(os.Environ(),
		"CERTFLEET_CERTIFICATE="+spec.Name,
		"CERTFLEET_NAMES="+strings.Join(certfleet.IdentifierValues(spec.Identifiers), " "),
	)
	runCleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
		defer cancel()
		for _, argv := range cleanup {
			if r := w.RunCommand(cctx, argv, env, "", 0); r.Err != nil {
				w.logger().Error("cleanup command failed", certfleet.LogCertificate, spec.Name, certfleet.LogError, r.Err)
			}
		}
	}
	for _, argv := range prepare {
		if r := w.RunCommand(ctx, argv, env, "", 0); r.Err != nil {
			runCleanup()
			return nil, r.Err
		}
	}
	return runCleanup, nil
}

// PrintSkipped prints the commands test mode did not run for name, quoted
// so that each argument is visible.
func PrintSkipped(w io.Writer, name string, cmds [][]string) {
	for _, argv := range cmds {
		q := make([]string, len(argv))
		for i, a := range argv {
			q[i] = strconv.Quote(a)
		}
		fmt.Fprintf(w, "test mode: not running for %s: [%s] (set [staging] run_commands = true to run)\n", name, strings.Join(q, ", "))
	}
}

// SyncWriter returns w with its writes serialised, for the test-mode
// printing (PrintSkipped) of deploys that run concurrently.
func SyncWriter(w io.Writer) io.Writer { return &syncWriter{w: w} }

type syncWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
