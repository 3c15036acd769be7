//go:build !unix

package deploy

import (
	"os"
	"os/exec"
	"syscall"
)

// Without process groups a helper is stopped by killing its own process;
// the children it started may survive it.

func helperProcAttr(cmd *exec.Cmd) {}

func signalGroup(pid int, sig syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func groupAlive(pid int) bool { return processExists(pid) }

func processExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
