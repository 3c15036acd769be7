package process_test

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/certfleet/certfleet/process"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		cmd      process.Command
		exit     int
		output   string
		err      bool
		timedOut bool
	}{
		{name: "success", cmd: process.Command{Argv: []string{"sh", "-c", "echo hello"}}, exit: 0, output: "hello\n"},
		{name: "exit status", cmd: process.Command{Argv: []string{"sh", "-c", "echo bad >&2; exit 3"}}, exit: 3, output: "bad\n", err: true},
		{name: "stdin", cmd: process.Command{Argv: []string{"cat"}, Stdin: []byte(`{"a":1}`)}, output: `{"a":1}`},
		{name: "only the given environment", cmd: process.Command{Argv: []string{"sh", "-c", `echo "[$X][$HOME]"`}, Env: []string{"X=1"}}, output: "[1][]\n"},
		{name: "dir", cmd: process.Command{Argv: []string{"pwd"}, Dir: "/"}, output: "/\n"},
		{name: "output tail", cmd: process.Command{Argv: []string{"sh", "-c", "printf 'aaaaaaaaaabbbbb'"}, OutputTail: 5}, output: "bbbbb"},
		{name: "no program", cmd: process.Command{}, exit: -1, err: true},
		{name: "missing program", cmd: process.Command{Argv: []string{"/nonexistent/certfleet-test"}}, exit: -1, err: true},
		{name: "timeout", cmd: process.Command{Argv: []string{"sh", "-c", "echo started; sleep 30"}, Timeout: 200 * time.Millisecond}, exit: -1, output: "started\n", err: true, timedOut: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := process.Run(t.Context(), tc.cmd)
			if got := r.Err != nil; got != tc.err {
				t.Fatalf("err = %v, want error %v", r.Err, tc.err)
			}
			if r.ExitCode != tc.exit {
				t.Errorf("exit code = %d, want %d", r.ExitCode, tc.exit)
			}
			if r.Output != tc.output {
				t.Errorf("output = %q, want %q", r.Output, tc.output)
			}
			if r.TimedOut != tc.timedOut {
				t.Errorf("timed out = %v, want %v", r.TimedOut, tc.timedOut)
			}
			if tc.timedOut && !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", r.Err)
			}
			var ee *exec.ExitError
			if tc.exit > 0 && !errors.As(r.Err, &ee) {
				t.Errorf("err = %T %v, want *exec.ExitError", r.Err, r.Err)
			}
		})
	}
}

// A timeout kills the program's whole process group: a shell's child
// holding the output pipe open must not keep Run waiting for it.
func TestRunTimeoutKillsGroup(t *testing.T) {
	start := time.Now()
	r := process.Run(t.Context(), process.Command{
		Argv:    []string{"sh", "-c", "sleep 60 & sleep 60; wait"},
		Timeout: 300 * time.Millisecond,
	})
	if !r.TimedOut {
		t.Fatalf("TimedOut = false (err %v), want true", r.Err)
	}
	// Without the group kill the orphaned sleep holds the pipe until
	// WaitDelay (5 s) runs out.
	if d := time.Since(start); d >= process.WaitDelay {
		t.Errorf("Run returned after %s: the child outlived the timeout", d)
	}
}

// Cancelling ctx ends the run with ctx's error, not a timeout.
func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	r := process.Run(ctx, process.Command{Argv: []string{"sleep", "30"}, Timeout: time.Minute})
	if !errors.Is(r.Err, context.Canceled) || r.TimedOut {
		t.Fatalf("err = %v, timed out %v; want context.Canceled, not timed out", r.Err, r.TimedOut)
	}
}

func TestTailConcurrentWriters(t *testing.T) {
	tl := process.NewTail(8)
	done := make(chan struct{})
	for range 2 {
		go func() {
			for range 1000 {
				tl.Write([]byte("xyz"))
			}
			done <- struct{}{}
		}()
	}
	<-done
	<-done
	if got := tl.String(); len(got) != 8 {
		t.Errorf("len = %d (%q), want 8", len(got), got)
	}
}

func TestFailure(t *testing.T) {
	tests := []struct {
		name string
		cmd  process.Command
		want string
	}{
		{name: "success", cmd: process.Command{Argv: []string{"true"}}, want: ""},
		{name: "exit status and output on one line", cmd: process.Command{Argv: []string{"sh", "-c", "echo 'no  such\nrecipient' >&2; exit 2"}},
			want: "alert command sh: exit status 2; output: no such recipient"},
		{name: "timeout", cmd: process.Command{Argv: []string{"sleep", "30"}, Timeout: 100 * time.Millisecond},
			want: "alert command sleep: did not finish within 100ms and was killed"},
		{name: "output cut", cmd: process.Command{Argv: []string{"sh", "-c", "echo 0123456789; exit 1"}},
			want: "alert command sh: exit status 1; output: 01234…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 100
			if tc.name == "output cut" {
				n = 5
			}
			err := process.Run(t.Context(), tc.cmd).Failure("alert command "+tc.cmd.Argv[0], n)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Failure = %q, want %q", got, tc.want)
			}
		})
	}
}
