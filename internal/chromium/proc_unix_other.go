//go:build unix && !linux

package chromium

import "syscall"

// setParentDeathSignal: only Linux has a parent-death signal; elsewhere a
// test binary that dies without Close leaves the browser running.
func setParentDeathSignal(*syscall.SysProcAttr) {}
