package deploy

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// setPdeathsig makes the kernel send SIGTERM to the helper when the thread
// that started it exits, which startHelper arranges to be when certfleet
// dies (or the helper was reaped).
func setPdeathsig(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGTERM }

// procStat reads the process group, state and start time (clock ticks
// since boot, as text) of pid from /proc/PID/stat (proc(5)).
func procStat(pid int) (pgrp int, state byte, start string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, "", false
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses itself: the other fields follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22
	// (starttime).
	if len(f) < 20 || f[0] == "" {
		return 0, 0, "", false
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, "", false
	}
	return pgrp, f[0][0], f[19], true
}

// procStart returns the start time of a live (not zombie) process pid: with
// the pid, it names one process across pid reuse.
func procStart(pid int) (string, bool) {
	_, state, start, ok := procStat(pid)
	if !ok || state == 'Z' || state == 'X' {
		return "", false
	}
	return start, true
}

// groupMembers lists the live (not zombie) processes of group pgid; ok is
// false when /proc cannot be read.
func groupMembers(pgid int) (pids []int, ok bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pgrp, state, _, ok := procStat(pid)
		if ok && pgrp == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids, true
}

// bootID names the current boot: records of an earlier boot name
// processes that are gone.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
