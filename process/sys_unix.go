//go:build unix

package process

import (
	"os/exec"
	"syscall"
)

// KillGroup makes cmd start in its own process group and makes its
// cancellation kill the whole group, so a shell's children die with it.
// It sets cmd.SysProcAttr.Setpgid and cmd.Cancel; call it before Start.
func KillGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
