package chromium

import "syscall"

// setParentDeathSignal has the kernel SIGKILL Chromium when the thread that
// started it exits: Start runs it from a goroutine locked to its thread for
// the browser's life, so that is when the test process exits. Chromium's
// other processes notice their browser process is gone and exit.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
