//go:build !unix

package hook

import "os/exec"

// killGroup: without process groups, cancellation kills the command only.
func killGroup(cmd *exec.Cmd) {}
