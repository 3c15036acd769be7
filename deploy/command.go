package deploy

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// waitDelay bounds how long Wait waits for the output pipes after the
// process exited or was killed (a daemon it started may hold them open).
const waitDelay = 5 * time.Second

// run executes argv in dir with env, killing its process group at timeout.
func (w *Writer) run(ctx context.Context, argv, env []string, dir string, timeout time.Duration) CommandResult {
	cr := CommandResult{Argv: argv, ExitCode: -1}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &tailBuffer{max: outputTail}
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = waitDelay
	killGroup(cmd)
	start := time.Now()
	err := cmd.Run()
	cr.Duration = time.Since(start)
	cr.Output = out.String()
	if cmd.ProcessState != nil {
		cr.ExitCode = cmd.ProcessState.ExitCode()
	}
	if err != nil {
		timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		ce := &CommandError{Argv: argv, ExitCode: cr.ExitCode, TimedOut: timedOut, Output: cr.Output, Err: err}
		if timedOut {
			ce.ExitCode, cr.ExitCode = -1, -1
			ce.Err = context.DeadlineExceeded
		} else if ctx.Err() != nil {
			ce.Err = ctx.Err()
		}
		cr.Err = ce
	}
	w.logger().InfoContext(ctx, "deploy command ran",
		certfleet.LogCommand, formatArgv(argv), "exit_code", cr.ExitCode,
		"duration", cr.Duration.Round(time.Millisecond), "ok", cr.Err == nil)
	return cr
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
