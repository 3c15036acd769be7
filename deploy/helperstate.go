package deploy

// Records of running prepare helpers, so that helpers a killed certfleet
// left behind are stopped at its next start.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// helpersDir is the directory under Writer.StateDir that holds one record
// per running helper.
const helpersDir = "helpers"

// helperRecord is what is kept of a running helper: enough to find it
// again after certfleet was killed, and to tell it from a process that
// reused its pid.
type helperRecord struct {
	PID        int      `json:"pid"`   // also its process group
	Start      string   `json:"start"` // its start time (Linux: ticks since boot); "" when unknown
	Boot       string   `json:"boot"`  // the boot it ran in
	OwnerPID   int      `json:"owner_pid"`
	OwnerStart string   `json:"owner_start"`
	Grace      string   `json:"grace"`
	Cert       string   `json:"certificate"`
	Argv       []string `json:"argv"`
}

// recordHelper writes the record of helper pid, started by this process,
// and returns its path.
func recordHelper(stateDir, cert string, argv []string, pid int, grace time.Duration) (string, error) {
	dir := filepath.Join(stateDir, helpersDir)
	start, _ := procStart(pid)
	ownerStart, _ := procStart(os.Getpid())
	data, err := json.Marshal(helperRecord{PID: pid, Start: start, Boot: bootID(), OwnerPID: os.Getpid(),
		OwnerStart: ownerStart, Grace: grace.String(), Cert: cert, Argv: argv})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, strconv.Itoa(pid)+".json")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("record the helper in %s: %w", dir, err)
	}
	if _, err := WriteFileAtomic(path, data, 0o600, "", ""); err != nil {
		return "", fmt.Errorf("record the helper: %w", err)
	}
	return path, nil
}

// StopLeftHelpers stops the prepare helpers that certfleet processes which
// no longer run left behind (killed mid-order: SIGKILL, an OOM kill) and
// that Writer.StateDir = stateDir recorded, and removes their records.
// Each helper's process group gets SIGTERM, then SIGKILL after its grace
// period. Helpers of certfleet processes still running are left alone, and
// so is a process that reused a helper's pid (told apart by start time).
// Records of an earlier boot are removed. It returns how many helpers were
// stopped; errors name the record, and a record that cannot be read is
// removed after it was reported.
//
// Where a process's start time cannot be read (systems without Linux's
// /proc), a left helper is reported and left running: killing a pid that
// may have been reused is worse.
func StopLeftHelpers(stateDir string, log *slog.Logger) (stopped int, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(stateDir, helpersDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("read the records of prepare helpers: %w", err)
	}
	var errs []error
	boot := bootID()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("prepare helper record %s: %w", path, err))
			continue
		}
		var rec helperRecord
		if err := json.Unmarshal(data, &rec); err != nil || rec.PID <= 1 {
			errs = append(errs, fmt.Errorf("prepare helper record %s is not one certfleet wrote; removed", path))
			os.Remove(path)
			continue
		}
		if rec.Boot != "" && boot != "" && rec.Boot != boot {
			os.Remove(path) // an earlier boot: its processes are gone
			continue
		}
		if ownerAlive(rec) {
			continue
		}
		if rec.Start == "" {
			if processExists(rec.PID) || groupAlive(rec.PID) {
				log.Warn("a prepare helper may have been left running by a killed certfleet; its start time is unknown here, so it is not stopped (its pid may belong to another process by now)",
					"pid", rec.PID, certfleet.LogCertificate, rec.Cert, certfleet.LogCommand, formatArgv(rec.Argv))
			}
			os.Remove(path)
			continue
		}
		start, running := procStart(rec.PID)
		if running && start != rec.Start || !running && !groupAlive(rec.PID) {
			// The pid was reused (the helper is gone), or the helper
			// and all its children are gone.
			os.Remove(path)
			continue
		}
		grace, err := time.ParseDuration(rec.Grace)
		if err != nil || grace <= 0 {
			grace = DefaultStopGrace
		}
		how := stopGroup(rec.PID, grace, nil)
		stopped++
		log.Warn("stopped a prepare helper a killed certfleet left running", "pid", rec.PID, "how", how,
			certfleet.LogCertificate, rec.Cert, certfleet.LogCommand, formatArgv(rec.Argv))
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return stopped, errors.Join(errs...)
}

// ownerAlive reports whether the certfleet process that recorded rec still
// runs. Where start times are unknown, any process with its pid counts.
func ownerAlive(rec helperRecord) bool {
	if rec.OwnerStart == "" {
		return processExists(rec.OwnerPID)
	}
	start, ok := procStart(rec.OwnerPID)
	return ok && start == rec.OwnerStart
}
