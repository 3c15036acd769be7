//go:build unix

package deploy

import (
	"errors"
	"os/exec"
	"syscall"
)

// helperProcAttr puts a helper in a process group of its own, so that
// stopping it reaches its children too (a shell's, ssh's), and on Linux
// asks for SIGTERM when certfleet dies.
func helperProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(cmd.SysProcAttr)
}

// signalGroup sends sig to every process of group pgid.
func signalGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }

// groupAlive reports whether process group pgid has a process left that is
// not a zombie (where that can be told).
func groupAlive(pgid int) bool {
	if members, ok := groupMembers(pgid); ok {
		return len(members) > 0
	}
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// processExists reports whether a process pid exists (maybe another one
// than the one meant, when the pid was reused).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
