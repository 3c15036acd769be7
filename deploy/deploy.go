// Package deploy writes issued certificates to local disk in certbot's
// layout and runs the commands (service reloads) that must follow.
//
// For each certificate it writes privkey.pem, cert.pem (the leaf), chain.pem
// (the intermediates) and fullchain.pem (leaf then intermediates) into the
// certificate's directory, each atomically (temporary file, fsync, rename,
// directory fsync), so a reader sees the old file or the new one, never a
// part. A spec with two key types (dual certificates) gets one subdirectory
// per key family instead: <Dir>/ecdsa/ and <Dir>/rsa/, each with the same
// four files; the family, not the exact key type, names the directory, so
// that moving from rsa2048 to rsa4096 does not move the files a server
// configuration points at.
//
// Writing is idempotent: files that already hold the wanted content, mode and
// owner are left alone, and commands run only when a file changed or the
// commands have not yet succeeded for this certificate (see Writer.Write).
// So calling Write for every certificate at every start is cheap and heals a
// crash between issuance and deployment.
//
// Beside that layout it writes extra copies (WriteCopies: a combined PEM
// for HAProxy, a chain at a path a server names), runs a certificate's
// prepare and cleanup commands and long-running prepare helpers around an
// order (Writer.Prepare), and runs commands once per batch of changed
// certificates, and actions for the batch's certificates that match their
// names (Batch). Which files and
// commands a certificate has is the caller's to say: this package reads no
// configuration.
//
// It deliberately does not fetch certificates (see the archive store, or the
// HTTP API client on remote hosts), keep history (the archive does),
// interpret commands with a shell, or touch the network: a helper's
// readiness probe of a port or URL is the caller's (Helper.Ready; the
// daemon package builds them).
package deploy

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// File names, as certbot writes them in /etc/letsencrypt/live/<name>/.
const (
	KeyFile       = "privkey.pem"
	CertFile      = "cert.pem"
	ChainFile     = "chain.pem"
	FullchainFile = "fullchain.pem"
)

// stateFile records the fingerprint of the certificate whose commands last
// all succeeded in a directory, so that commands interrupted by a crash or
// failed last time run again at the next Write. Dot-prefixed, so servers that
// load every file of a directory (HAProxy's crt <dir>) skip it.
const stateFile = ".certfleet-deployed"

// Defaults for Target.
const (
	// DefaultKeyMode keeps the private key readable by its owner only.
	DefaultKeyMode os.FileMode = 0o600
	// DefaultCertMode: certificates are public.
	DefaultCertMode os.FileMode = 0o644
	// DefaultDirMode is the mode of directories Write creates.
	DefaultDirMode os.FileMode = 0o755
	// DefaultTimeout bounds each command: a reload that takes longer is
	// stuck.
	DefaultTimeout = 60 * time.Second
)

// outputTail is how much of a command's combined output is kept: enough
// for an error message, bounded so a chatty command cannot fill memory.
const outputTail = 4 << 10

// Target says where and how to deploy one certificate spec's certificates.
type Target struct {
	// Dir is the certificate's own directory, like certbot's
	// /etc/letsencrypt/live/<name>; it is created when missing. Required.
	Dir string
	// Owner and Group, when set, own every file written (user and group
	// names, or numeric ids). "" leaves that id as the writing process
	// makes it. Changing them usually needs root.
	Owner, Group string
	// KeyMode is privkey.pem's mode. Default DefaultKeyMode. The key file
	// is created 0600 and only then given this mode, so it is never more
	// readable than asked, not even for a moment.
	KeyMode os.FileMode
	// CertMode is the mode of the certificate files. Default
	// DefaultCertMode.
	CertMode os.FileMode
	// DirMode is the mode of directories Write creates. Default
	// DefaultDirMode. Existing directories are left alone.
	DirMode os.FileMode
	// Commands run, one after another, after the files are in place (see
	// Writer.Write). Each is an argv, executed directly WITHOUT a shell:
	// {"systemctl", "reload", "nginx"}. To use shell syntax, say so:
	// {"sh", "-c", "nginx -t && nginx -s reload"}. Certificate details
	// are passed in the environment (CERTFLEET_*), never spliced into the
	// command.
	Commands [][]string
	// Timeout bounds each command; on expiry its whole process group is
	// killed. Default DefaultTimeout.
	Timeout time.Duration
}

// Result reports what one Write did.
type Result struct {
	// Dir is the directory the files are in (Target.Dir, or its key
	// family subdirectory for dual certificates).
	Dir string
	// Changed reports whether any certificate or key file was written.
	Changed bool
	// Files lists the paths written, in the order they were written.
	Files []string
	// Commands holds the outcome of each command that ran.
	Commands []CommandResult
}

// CommandResult is the outcome of one command.
type CommandResult struct {
	Argv     []string
	ExitCode int    // -1 when it did not exit by itself (not started, killed)
	Output   string // the last few KiB of its combined stdout and stderr
	Duration time.Duration
	Err      error // nil on success, else a *CommandError
}

// CommandError reports a command that failed: it could not start, exited
// non-zero, or was killed at its timeout.
type CommandError struct {
	Argv     []string
	ExitCode int // -1 when it did not exit by itself
	TimedOut bool
	Output   string // tail of its combined output
	Err      error
}

func (e *CommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "command %s: ", formatArgv(e.Argv))
	switch {
	case e.TimedOut:
		b.WriteString("killed at timeout")
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	default:
		b.WriteString(e.Err.Error())
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		fmt.Fprintf(&b, "; output: %s", out)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// Writer deploys certificates. The zero value is ready to use. It is safe
// for concurrent use, but two Writes to the same directory at once race.
type Writer struct {
	// Logger receives an info event per deployment that changed files
	// and per command run. Nil discards.
	Logger *slog.Logger
	// StateDir, when set, is where running prepare helpers are recorded
	// (in its "helpers" subdirectory), so that StopLeftHelpers can stop
	// the ones a killed certfleet left behind. "" records nothing.
	StateDir string

	mu      sync.Mutex            // guards helpers
	helpers map[string]*helperSet // running prepare helpers by certificate name
}

// KeyTypeDir returns the directory the files of spec's key type kt go to:
// dir itself, or dir/<family> ("rsa", "ecdsa") when spec has two key types.
func KeyTypeDir(dir string, spec certfleet.CertificateSpec, kt certfleet.KeyType) string {
	if len(spec.KeyTypes) > 1 {
		return filepath.Join(dir, kt.Family())
	}
	return dir
}

// Write deploys iss, an issuance of spec, to t.
//
// Files are written in this order: privkey.pem, cert.pem, chain.pem,
// fullchain.pem. Each file is replaced atomically, but the set is not: a
// service that reads the files between two renames can see the new key
// with the old certificate. Reload services with t.Commands, which run
// only once every file is in place. An issuance without a key (CSR mode)
// leaves privkey.pem alone.
//
// Files that already hold the wanted content, mode and owner are not
// touched. Commands run, in order, when a file was written, or when the
// commands have not yet all succeeded for this certificate (a crash
// before they ran, or a failure last time); every command runs even when
// an earlier one fails. Each gets the inherited environment plus
// CERTFLEET_CERTIFICATE, CERTFLEET_KEY_TYPE, CERTFLEET_NAMES
// (space-separated), CERTFLEET_DIR, CERTFLEET_CERT_PATH,
// CERTFLEET_CHAIN_PATH, CERTFLEET_FULLCHAIN_PATH, CERTFLEET_KEY_PATH,
// CERTFLEET_SERIAL and CERTFLEET_NOT_AFTER (RFC 3339), and runs in the
// certificate's directory.
//
// Errors: EINVALID for a target or issuance that cannot be deployed (a key
// that does not match the certificate, an issuance of another spec); a
// *CommandError (joined, one per failed command) after the files were
// written; otherwise the file system's error. Errors never contain key
// material.
func (w *Writer) Write(ctx context.Context, t Target, spec certfleet.CertificateSpec, iss certfleet.Issuance) (Result, error) {
	var res Result
	files, fingerprint, err := prepare(t, spec, iss)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	dir := KeyTypeDir(t.Dir, spec, iss.KeyType)
	res.Dir = dir
	uid, gid, err := lookupOwner(t.Owner, t.Group)
	if err != nil {
		return res, err
	}
	if err := mkdirs(dir, orDefault(t.DirMode, DefaultDirMode), uid, gid); err != nil {
		return res, fmt.Errorf("deploy %s: %w", spec.Name, err)
	}
	keyMode, certMode := orDefault(t.KeyMode, DefaultKeyMode), orDefault(t.CertMode, DefaultCertMode)
	for _, f := range files {
		mode := certMode
		if f.name == KeyFile {
			mode = keyMode
		}
		path := filepath.Join(dir, f.name)
		same, err := upToDate(path, f.data, mode, uid, gid)
		if err != nil {
			return res, fmt.Errorf("deploy %s: %w", spec.Name, err)
		}
		if same {
			continue
		}
		if err := writeFile(dir, f.name, f.data, mode, uid, gid); err != nil {
			return res, fmt.Errorf("deploy %s: %w", spec.Name, err)
		}
		res.Files = append(res.Files, path)
	}
	res.Changed = len(res.Files) > 0
	if res.Changed {
		if err := syncDir(dir); err != nil {
			return res, fmt.Errorf("deploy %s: %w", spec.Name, err)
		}
		w.logger().InfoContext(ctx, "certificate deployed",
			certfleet.LogCertificate, spec.Name, certfleet.LogKeyType, string(iss.KeyType),
			certfleet.LogSerial, certfleet.FormatSerial(iss.Serial), certfleet.LogPath, dir, "files", len(res.Files))
	}

	statePath := filepath.Join(dir, stateFile)
	deployed, err := os.ReadFile(statePath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("deploy %s: %w", spec.Name, err)
	}
	if !res.Changed && string(bytes.TrimSpace(deployed)) == fingerprint {
		return res, nil
	}
	env := commandEnv(dir, spec, iss)
	var errs []error
	for _, argv := range t.Commands {
		cr := w.run(ctx, argv, env, dir, orDefault(t.Timeout, DefaultTimeout))
		res.Commands = append(res.Commands, cr)
		if cr.Err != nil {
			errs = append(errs, cr.Err)
		}
	}
	if len(errs) > 0 {
		// The state file keeps the old fingerprint: the commands run
		// again at the next Write.
		return res, fmt.Errorf("deploy %s: %w", spec.Name, errors.Join(errs...))
	}
	if err := writeFile(dir, stateFile, []byte(fingerprint+"\n"), certMode, uid, gid); err != nil {
		return res, fmt.Errorf("deploy %s: %w", spec.Name, err)
	}
	return res, nil
}

type file struct {
	name string
	data []byte
}

// prepare checks the target and issuance and returns the files to write, in
// order, and the leaf's fingerprint.
func prepare(t Target, spec certfleet.CertificateSpec, iss certfleet.Issuance) ([]file, string, error) {
	if t.Dir == "" {
		return nil, "", certfleet.Errorf(certfleet.EINVALID, "deploy %s: no directory", spec.Name)
	}
	for i, argv := range t.Commands {
		if len(argv) == 0 || argv[0] == "" {
			return nil, "", certfleet.Errorf(certfleet.EINVALID, "deploy %s: command %d is empty", spec.Name, i+1)
		}
	}
	if iss.Spec != spec.Name {
		return nil, "", certfleet.Errorf(certfleet.EINVALID, "deploy %s: issuance %d belongs to certificate %q", spec.Name, iss.ID, iss.Spec)
	}
	if !slices.Contains(spec.KeyTypes, iss.KeyType) {
		return nil, "", certfleet.Errorf(certfleet.EINVALID, "deploy %s: issuance %d has key type %s, not one of the spec's %v", spec.Name, iss.ID, iss.KeyType, spec.KeyTypes)
	}
	leafPEM, chainPEM, err := iss.SplitChain()
	if err != nil {
		return nil, "", certfleet.Errorf(certfleet.EINVALID, "deploy %s: %v", spec.Name, err)
	}
	leaf, err := iss.Leaf()
	if err != nil {
		return nil, "", certfleet.Errorf(certfleet.EINVALID, "deploy %s: issuance %d: %v", spec.Name, iss.ID, err)
	}
	var files []file
	if len(iss.KeyPEM) > 0 {
		key, err := certfleet.ParsePrivateKey(iss.KeyPEM)
		if err != nil {
			return nil, "", certfleet.Errorf(certfleet.EINVALID, "deploy %s: issuance %d: %v", spec.Name, iss.ID, err)
		}
		pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(key.Public()) {
			// Never write a pair a server would refuse to load.
			return nil, "", certfleet.Errorf(certfleet.EINVALID, "deploy %s: issuance %d: private key does not match the certificate", spec.Name, iss.ID)
		}
		files = append(files, file{KeyFile, iss.KeyPEM})
	}
	full := append(append([]byte(nil), leafPEM...), chainPEM...)
	files = append(files, file{CertFile, leafPEM}, file{ChainFile, chainPEM}, file{FullchainFile, full})
	return files, certfleet.Fingerprint(leaf), nil
}

func commandEnv(dir string, spec certfleet.CertificateSpec, iss certfleet.Issuance) []string {
	return certfleet.ChildEnv(os.Environ(),
		"CERTFLEET_CERTIFICATE="+spec.Name,
		"CERTFLEET_KEY_TYPE="+string(iss.KeyType),
		"CERTFLEET_NAMES="+strings.Join(certfleet.IdentifierValues(iss.Identifiers), " "),
		"CERTFLEET_DIR="+dir,
		"CERTFLEET_CERT_PATH="+filepath.Join(dir, CertFile),
		"CERTFLEET_CHAIN_PATH="+filepath.Join(dir, ChainFile),
		"CERTFLEET_FULLCHAIN_PATH="+filepath.Join(dir, FullchainFile),
		"CERTFLEET_KEY_PATH="+filepath.Join(dir, KeyFile),
		"CERTFLEET_SERIAL="+certfleet.FormatSerial(iss.Serial),
		"CERTFLEET_NOT_AFTER="+iss.NotAfter.UTC().Format(time.RFC3339),
	)
}

// upToDate reports whether path is a regular file with exactly data, mode
// and (where uid, gid >= 0) owner.
func upToDate(path string, data []byte, mode os.FileMode, uid, gid int) (bool, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm() != mode || st.Size() != int64(len(data)) {
		return false, nil
	}
	if fuid, fgid, ok := fileOwner(st); ok && (uid >= 0 && fuid != uid || gid >= 0 && fgid != gid) {
		return false, nil
	}
	cur, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return bytes.Equal(cur, data), nil
}

// writeFile replaces dir/name atomically. The temporary file is created
// 0600 (os.CreateTemp), given its owner and only then its final mode, so a
// key is never readable by anyone it is not meant for; it is synced before
// the rename.
func writeFile(dir, name string, data []byte, mode os.FileMode, uid, gid int) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return chownError(filepath.Join(dir, name), uid, gid, err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// mkdirs creates dir and its missing parents with mode (regardless of the
// umask) and owner.
func mkdirs(dir string, mode os.FileMode, uid, gid int) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirs(parent, mode, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, mode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made concurrently
		}
		return err
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return chownError(dir, uid, gid, err)
		}
	}
	return os.Chmod(dir, mode)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (w *Writer) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

// formatArgv renders argv for messages, quoting words that need it.
func formatArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`;&|<>()*?[]{}~#") {
			parts[i] = strconv.Quote(a)
		} else {
			parts[i] = a
		}
	}
	return strings.Join(parts, " ")
}
