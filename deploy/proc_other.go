//go:build !linux

package deploy

import "syscall"

// Without /proc a process's start time is unknown: records of helpers
// cannot tell a helper from a process that reused its pid, so
// StopLeftHelpers leaves them running (and says so).

func setPdeathsig(attr *syscall.SysProcAttr) {}

func procStart(pid int) (string, bool) { return "", false }

func groupMembers(pgid int) ([]int, bool) { return nil, false }

func bootID() string { return "" }
