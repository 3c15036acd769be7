package deploy

import (
	"context"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/process"
)

// run executes argv in dir with env, killing its process group at timeout.
func (w *Writer) run(ctx context.Context, argv, env []string, dir string, timeout time.Duration) CommandResult {
	pr := process.Run(ctx, process.Command{Argv: argv, Env: env, Dir: dir, Timeout: timeout, OutputTail: outputTail})
	cr := CommandResult{Argv: argv, ExitCode: pr.ExitCode, Output: pr.Output, Duration: pr.Duration}
	if pr.Err != nil {
		cr.Err = &CommandError{Argv: argv, ExitCode: pr.ExitCode, TimedOut: pr.TimedOut, Output: pr.Output, Err: pr.Err}
	}
	w.logger().InfoContext(ctx, "deploy command ran",
		certfleet.LogCommand, formatArgv(argv), "exit_code", cr.ExitCode,
		"duration", cr.Duration.Round(time.Millisecond), "ok", cr.Err == nil)
	return cr
}
