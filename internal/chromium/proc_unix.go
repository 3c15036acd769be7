//go:build unix

package chromium

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts Chromium in its own process group, so Close stops
// its renderer and zygote processes with it, and (on Linux) has the kernel
// kill it if the test binary dies first (a panic, go test -timeout), when
// no Close runs.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr)
}

func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
