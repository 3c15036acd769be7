package deploy

import (
	"context"
	"errors"
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

// maxEnvValue bounds a list variable of a batch: Linux refuses to start a
// program with an environment string over 128 KiB (MAX_ARG_STRLEN), which
// would make every command of the batch fail. A longer list is left out
// of the environment; CERTFLEET_CHANGED_FILE always has it.
const maxEnvValue = 100 << 10

// Batch collects the certificates whose files changed and, once per batch
// of them, runs the actions whose identifiers match some of them, then one
// set of commands for all of them (the [deploy] commands: one reload of
// the load balancer after a renewal wave, not one per certificate). A
// batch ends at Flush, or, after Debounce, when no file changed for a
// while.
//
// Commands run in order, without a shell, with the environment of the
// last certificate noted (of those the action is for) plus the batch's
// variables (see Flush); the Writer's logger gets a line per run, and
// each failure. It is safe for concurrent use.
type Batch struct {
	// Writer runs the commands. Required.
	Writer *Writer
	// Commands returns the commands in force, read at each flush (a
	// reload may change them). Nil runs none.
	Commands func() [][]string
	// Actions returns the actions in force, read at each flush. Nil runs
	// none.
	Actions func() []Action
	// Print, when set (test mode), receives the commands instead of
	// running them (see PrintSkipped).
	Print io.Writer

	mu      sync.Mutex    // guards the fields below
	changed []Change      // in order of first change, one per name
	lastEnv []string      // the environment of the last changed certificate
	quiet   time.Duration // 0: batches end at Flush only
	timer   *time.Timer
}

// Note records a certificate whose files changed. Notes of one name in a
// batch (its two key types, a rewrite) are merged: their files add up,
// the last identifiers and environment count.
func (b *Batch) Note(c Change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.changed, func(o Change) bool { return o.Name == c.Name })
	if i < 0 {
		c.CertFiles, c.KeyFiles = slices.Clone(c.CertFiles), slices.Clone(c.KeyFiles)
		b.changed = append(b.changed, c)
	} else {
		o := &b.changed[i]
		o.Identifiers, o.Env = c.Identifiers, c.Env
		o.CertFiles = appendNew(o.CertFiles, c.CertFiles...)
		o.KeyFiles = appendNew(o.KeyFiles, c.KeyFiles...)
	}
	b.lastEnv = c.Env
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

// batchRun is one set of commands a flush runs, for some of its changes.
type batchRun struct {
	label   string   // "[deploy]", "[[deploy.action]] NAME"
	action  string   // the action's name, "" for [deploy]
	changes []Change // the certificates it is for
	env     []string // the per-certificate environment it starts from
	cmds    [][]string
}

// Flush ends the batch so far: if any certificate changed, it runs each
// action that any of them matched (Action), in order, and then the
// commands, and reports the failures (also logged). An action's commands,
// like the [deploy] commands, stop at their first failure; the other
// actions and the commands run anyway. Everything runs on a context of
// its own, bounded by CleanupTimeout.
//
// Besides the variables of the last certificate it is for, each run gets
// (values space-separated, in order of change):
//   - CERTFLEET_CHANGED: the certificates' names;
//   - CERTFLEET_DOMAINS_CN: the first identifier of each (lematt's
//     DOMAINS_CN);
//   - CERTFLEET_DOMAINS_ALL: every identifier of them, once (DOMAINS_ALL);
//   - CERTFLEET_CERTS and CERTFLEET_KEYS: their files without and with the
//     private key (lematt's CERTS and KEYS);
//   - CERTFLEET_CHANGED_FILE: a file listing all of that, one
//     "KIND<TAB>CERTIFICATE<TAB>VALUE" line per value, KIND being cn, name,
//     cert or key (for paths with spaces, and lists too long for an
//     environment: a list over 100 KiB is left out of the environment);
//   - CERTFLEET_ACTION: the action's name (actions only).
func (b *Batch) Flush(ctx context.Context) error {
	b.mu.Lock()
	changed, env := b.changed, b.lastEnv
	b.changed, b.lastEnv = nil, nil
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
	if len(changed) == 0 {
		return nil
	}
	var runs []batchRun
	if b.Actions != nil {
		actions := b.Actions()
		for i, a := range actions {
			sel := a.Select(changed, actions)
			if len(sel) == 0 || len(a.Commands) == 0 {
				continue
			}
			name := a.Name
			if name == "" {
				name = strconv.Itoa(i + 1)
			}
			runs = append(runs, batchRun{label: "[[deploy.action]] " + name, action: name, changes: sel,
				env: sel[len(sel)-1].Env, cmds: a.Commands})
		}
	}
	if b.Commands != nil {
		if cmds := b.Commands(); len(cmds) > 0 {
			runs = append(runs, batchRun{label: "[deploy]", changes: changed, env: env, cmds: cmds})
		}
	}
	if b.Print != nil {
		for _, r := range runs {
			PrintSkipped(b.Print, r.label+" ("+strings.Join(changeNames(r.changes), " ")+")", r.cmds)
		}
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	var errs []error
	for _, r := range runs {
		if err := b.run(cctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run runs one set of commands of a flush with the batch's variables.
func (b *Batch) run(ctx context.Context, r batchRun) error {
	log := b.Writer.logger()
	list := strings.Join(changeNames(r.changes), " ")
	listFile, err := writeChangedFile(r.changes)
	if err != nil {
		err = fmt.Errorf("%s commands after %s: %w", r.label, list, err)
		log.Error("deploy command failed", certfleet.LogError, err)
		return err
	}
	defer os.Remove(listFile)
	env := r.env
	if env == nil {
		env = certfleet.ChildEnv(os.Environ())
	}
	env = slices.Clip(env)
	for _, kv := range batchVars(r.changes) {
		if len(kv[1]) > maxEnvValue {
			log.Warn("a batch variable is too long for the environment and is left out; read CERTFLEET_CHANGED_FILE instead",
				"variable", kv[0], "bytes", len(kv[1]))
			continue
		}
		env = append(env, kv[0]+"="+kv[1])
	}
	env = append(env, "CERTFLEET_CHANGED_FILE="+listFile)
	if r.action != "" {
		env = append(env, "CERTFLEET_ACTION="+r.action)
	}
	for _, argv := range r.cmds {
		if res := b.Writer.RunCommand(ctx, argv, env, "", 0); res.Err != nil {
			err := fmt.Errorf("%s commands after %s: %w", r.label, list, res.Err)
			log.Error("deploy command failed", certfleet.LogError, err)
			return err
		}
	}
	log.Info(r.label+" commands ran", "changed", list)
	return nil
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
