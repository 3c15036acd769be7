//go:build !unix

package process

import "os/exec"

// KillGroup: without process groups, cancellation kills the program only.
func KillGroup(cmd *exec.Cmd) {}
