package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// WriteFileAtomic replaces path with data, mode and owner (names or
// numeric ids; "" leaves that id alone) the way Write replaces the certbot
// files: a temporary file in the same directory, created 0600, chowned and
// chmodded, fsynced, then renamed over path. A file that already holds
// exactly data, mode and owner is left alone and written reports false.
// The directory is created (DefaultDirMode) when missing. It does not sync
// the directory: call SyncDir once after the last file of a set, so the
// renames are durable.
//
// It is for writers of other layouts than certbot's (the agent's custom
// paths and combined PEM files). Errors never contain data.
func WriteFileAtomic(path string, data []byte, mode os.FileMode, owner, group string) (written bool, err error) {
	uid, gid, err := lookupOwner(owner, group)
	if err != nil {
		return false, err
	}
	dir, name := filepath.Split(path)
	dir = filepath.Clean(dir)
	if name == "" {
		return false, fmt.Errorf("write %q: not a file path", path)
	}
	if err := mkdirs(dir, DefaultDirMode, uid, gid); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	same, err := upToDate(path, data, mode, uid, gid)
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if same {
		return false, nil
	}
	if err := writeFile(dir, name, data, mode, uid, gid); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// SyncDir fsyncs a directory, making the renames in it durable.
func SyncDir(dir string) error { return syncDir(dir) }

// RunCommand runs argv as Write runs Target.Commands: without a shell, in
// dir, with env (which should include os.Environ()), its process group
// killed at timeout (DefaultTimeout when zero), and the tail of its output
// kept.
func (w *Writer) RunCommand(ctx context.Context, argv, env []string, dir string, timeout time.Duration) CommandResult {
	if len(argv) == 0 || argv[0] == "" {
		err := fmt.Errorf("empty command")
		return CommandResult{Argv: argv, ExitCode: -1, Err: &CommandError{Argv: argv, ExitCode: -1, Err: err}}
	}
	return w.run(ctx, argv, env, dir, orDefault(timeout, DefaultTimeout))
}
