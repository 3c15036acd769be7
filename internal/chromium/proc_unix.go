//go:build unix

package chromium

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts Chromium in its own process group, so Close stops
// its renderer and zygote processes with it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
