package agent

import (
	"fmt"
	"os"
	"path/filepath"
)

// stateDirMode is the state directory's mode: it holds CSR mode's pending
// keys and what the commands last did, nobody else's business (docs/agent.md).
const stateDirMode os.FileMode = 0o700

// prepareStateDir creates StateDir (and missing parents) mode 0700,
// whatever the umask, before anything is written into it; a state
// directory an older agent made group- or world-readable is tightened to
// 0700, and the change logged. Without a StateDir it does nothing.
func (a *Agent) prepareStateDir() error {
	dir := a.cfg.StateDir
	if dir == "" {
		return nil
	}
	dir = filepath.Clean(dir)
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("agent: state_dir %s is not a directory: point state_dir at a directory (or remove the file)", dir)
	case err == nil:
		if st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(dir, stateDirMode); err != nil {
				return fmt.Errorf("agent: state_dir %s is mode %#o, readable by others, and cannot be made 0700: %w (chmod 0700 %s)", dir, st.Mode().Perm(), err, dir)
			}
			a.log.Warn("state directory was readable by others; made it 0700", "dir", dir, "old_mode", fmt.Sprintf("%#o", st.Mode().Perm()))
		}
		return nil
	case !os.IsNotExist(err):
		return fmt.Errorf("agent: state_dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("agent: create the parent of state_dir %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, stateDirMode); err != nil && !os.IsExist(err) {
		return fmt.Errorf("agent: create state_dir: %w", err)
	}
	// Mkdir's mode passes through the umask; the mode is ours to set.
	if err := os.Chmod(dir, stateDirMode); err != nil {
		return fmt.Errorf("agent: state_dir: %w", err)
	}
	return nil
}
