// Package process runs the external programs certfleet calls (deploy and
// reload commands, event commands, alert commands) the one way all of them
// are run: without a shell (the argv as given), with a timeout that kills
// the program's whole process group, with a bound on how long its output
// pipes are waited for, and with only the last few KiB of its combined
// output kept for the error message.
//
// It does not decide a program's environment (callers build it, usually
// with certfleet.ChildEnv so the master key is not inherited), what its
// payload is, or how a failure is reported: callers turn a Result into
// their own error. Long-running programs (deploy's helpers) are started by
// deploy itself and use KillGroup only.
package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DefaultOutputTail is how much of a program's combined stdout and stderr
// Run keeps when Command.OutputTail is zero: enough for an error message,
// bounded so a chatty program cannot fill memory.
const DefaultOutputTail = 4 << 10

// WaitDelay bounds how long Run waits for the output pipes after the
// program exited or was killed: a daemon it started may hold them open.
const WaitDelay = 5 * time.Second

// Command is one run of a program.
type Command struct {
	// Argv is the program and its arguments, executed directly, without a
	// shell. Required.
	Argv []string
	// Env is the program's whole environment. Nil gives it none.
	Env []string
	// Dir is its working directory; "" is certfleet's.
	Dir string
	// Stdin is written to its standard input; nil gives it none.
	Stdin []byte
	// Timeout bounds the run; at expiry the program's process group is
	// killed. Zero means no timeout besides ctx.
	Timeout time.Duration
	// OutputTail is how many bytes of combined output Result.Output keeps.
	// Default DefaultOutputTail.
	OutputTail int
}

// Result is how one run ended.
type Result struct {
	// ExitCode is the program's exit status, or -1 when it did not exit
	// by itself (it could not start, or it was killed).
	ExitCode int
	// Output is the end of its combined stdout and stderr.
	Output string
	// Duration is how long it ran.
	Duration time.Duration
	// TimedOut reports that Command.Timeout expired and the program was
	// killed.
	TimedOut bool
	// Timeout is the Command's.
	Timeout time.Duration
	// Err is nil when the program exited 0. Otherwise it is
	// context.DeadlineExceeded when it timed out, ctx's error when ctx
	// ended first, or the error from starting or waiting for it (an
	// *exec.ExitError for a non-zero exit).
	Err error
}

// Run runs c and waits for it. It never returns a nil Result.Err for a
// program that did not exit 0.
func Run(ctx context.Context, c Command) Result {
	r := Result{ExitCode: -1, Timeout: c.Timeout}
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		r.Err = errors.New("no program given")
		return r
	}
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if c.Timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	defer cancel()
	n := c.OutputTail
	if n <= 0 {
		n = DefaultOutputTail
	}
	out := NewTail(n)
	cmd := exec.CommandContext(cctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = c.Dir
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = WaitDelay
	KillGroup(cmd)
	start := time.Now()
	err := cmd.Run()
	r.Duration = time.Since(start)
	r.Output = out.String()
	if cmd.ProcessState != nil {
		r.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.Err, r.ExitCode = ctx.Err(), -1
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		r.Err, r.ExitCode, r.TimedOut = context.DeadlineExceeded, -1, true
	default:
		r.Err = err
	}
	return r
}

// Failure returns nil when the program exited 0; otherwise an error that
// starts with label (which names the run: "alert command /usr/local/bin/page"),
// says how it ended (its exit status, its timeout, the cancellation or why it
// could not start) and ends with its output folded onto one line, at most
// max bytes of it.
func (r Result) Failure(label string, max int) error {
	if r.Err == nil {
		return nil
	}
	what := r.Err.Error()
	if r.TimedOut {
		what = fmt.Sprintf("did not finish within %s and was killed", r.Timeout)
	}
	msg := label + ": " + what
	if o := strings.Join(strings.Fields(r.Output), " "); o != "" {
		if len(o) > max {
			cut := max
			for cut > 0 && !utf8.RuneStart(o[cut]) {
				cut--
			}
			o = o[:cut] + "…"
		}
		msg += "; output: " + o
	}
	return errors.New(msg)
}

// Tail is an io.Writer that keeps the last bytes written to it. It is safe
// for concurrent use (stdout and stderr write from two goroutines).
type Tail struct {
	mu  sync.Mutex // guards buf
	buf []byte
	max int
}

// NewTail returns a Tail keeping the last max bytes.
func NewTail(max int) *Tail { return &Tail{max: max} }

// Write keeps the end of p; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns what is kept.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
