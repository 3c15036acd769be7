// Package webroot solves ACME http-01 challenges (RFC 8555 §8.3) by writing
// the key authorization into a directory that an existing web server already
// serves, as certbot's webroot plugin does.
//
// It only writes and removes files: it runs no server. Use it on the host
// whose web server answers for the names; to answer from certfleet itself
// (one place for many hosts, or behind a load balancer), use solver/http01.
package webroot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/certfleet/certfleet"
)

// ChallengeDir is the directory, relative to the web root, that holds token
// files. RFC 8555 §8.3: the path "consists of a fixed prefix
// '/.well-known/acme-challenge/', followed by the 'token' value".
const ChallengeDir = ".well-known/acme-challenge"

// Default modes: world-readable, because the web server usually runs as
// another user. A key authorization is public by design (the CA fetches it
// over plain HTTP).
const (
	DefaultMode    os.FileMode = 0o644
	DefaultDirMode os.FileMode = 0o755
)

// maxTokenLen bounds accepted tokens (ours), as in solver/http01.
const maxTokenLen = 256

// Solver presents http-01 challenges as files under Dir. It is safe for
// concurrent use; its fields must not change after first use.
type Solver struct {
	// Dir is the web root: the directory served at "/" for every
	// identifier of the certificate. It must exist (a typo should fail,
	// not create a directory nobody serves); .well-known/acme-challenge
	// below it is created as needed.
	Dir string
	// Mode is the token files' permission bits, applied regardless of the
	// umask. Default DefaultMode.
	Mode os.FileMode
	// DirMode is the permission bits of the directories Present creates.
	// Default DefaultDirMode.
	DirMode os.FileMode
}

var _ certfleet.Solver = (*Solver)(nil)

// Present writes the key authorization to
// <Dir>/.well-known/acme-challenge/<token>, atomically (a temporary file in
// the same directory renamed into place), so the web server never serves a
// partial file. Tokens outside the base64url alphabet are refused with
// EINVALID: a token becomes a file name, and "../" must never reach the
// file system.
//
// Every file operation below Dir goes through an os.Root opened on Dir
// (openat-style resolution, each component checked): a symbolic link
// planted at .well-known or acme-challenge by whoever owns the web root is
// followed only while it stays inside Dir, and one that points out of it
// (to /etc, to another site's root) fails with EINVALID instead of letting
// certfleet write, chmod or remove where it points (issue 17).
func (s *Solver) Present(ctx context.Context, chal certfleet.Challenge) error {
	rel, err := s.path(chal)
	if err != nil {
		return err
	}
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := s.mkdirs(root); err != nil {
		return err
	}
	mode := s.Mode
	if mode == 0 {
		mode = DefaultMode
	}
	tmp := filepath.Join(ChallengeDir, ".certfleet-"+chal.Token+"-"+randSuffix())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return s.rootErr(err)
	}
	defer root.Remove(tmp) // no-op once renamed
	_, err = f.WriteString(chal.KeyAuthorization)
	if err == nil {
		// Chmod the open file (fchmod), so the umask has no say and no
		// link swapped in meanwhile is followed.
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("webroot: write %s: %w", filepath.Join(s.Dir, tmp), err)
	}
	// No fsync: a token file is useless after a crash anyway.
	if err := root.Rename(tmp, rel); err != nil {
		return s.rootErr(err)
	}
	return nil
}

// CleanUp removes the token file. A missing file is not an error, so CleanUp
// may be repeated or run for a challenge whose Present failed. The
// directories are left in place: other challenges may be using them. Like
// Present it never follows a link out of Dir.
func (s *Solver) CleanUp(ctx context.Context, chal certfleet.Challenge) error {
	rel, err := s.path(chal)
	if err != nil {
		return err
	}
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.rootErr(err)
	}
	return nil
}

// path validates chal and returns its token file's path relative to Dir.
func (s *Solver) path(chal certfleet.Challenge) (string, error) {
	if s.Dir == "" {
		return "", certfleet.Errorf(certfleet.EINVALID, "webroot solver has no directory")
	}
	if chal.Type != certfleet.ChallengeHTTP01 {
		return "", certfleet.Errorf(certfleet.EINVALID, "webroot solver given a %s challenge", chal.Type)
	}
	if !validToken(chal.Token) {
		return "", certfleet.Errorf(certfleet.EINVALID, "http-01 challenge for %s: token is not base64url", chal.Identifier.Value)
	}
	return filepath.Join(ChallengeDir, chal.Token), nil
}

// openRoot opens Dir, which must exist and be a directory, as an os.Root.
func (s *Solver) openRoot() (*os.Root, error) {
	if st, err := os.Stat(s.Dir); err != nil {
		return nil, fmt.Errorf("webroot: %w", err)
	} else if !st.IsDir() {
		return nil, certfleet.Errorf(certfleet.EINVALID, "webroot %s is not a directory", s.Dir)
	}
	root, err := os.OpenRoot(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("webroot: %w", err)
	}
	return root, nil
}

// rootErr words an error of an os.Root operation: a path that escapes Dir
// (a symbolic link pointing out of the web root) is EINVALID and says what
// to remove.
func (s *Solver) rootErr(err error) error {
	if isEscape(err) {
		return certfleet.Errorf(certfleet.EINVALID,
			"webroot %s: %s below it is (or passes through) a symbolic link that points outside the web root; "+
				"certfleet never writes through it: remove the link (or make it point inside %s) and retry", s.Dir, ChallengeDir, s.Dir)
	}
	return fmt.Errorf("webroot: %w", err)
}

// isEscape reports whether err is os.Root's refusal of a path leaving the
// root. The os package has no exported sentinel for it, so the PathError's
// message is compared with the one os.Root produces; a link whose target
// does not even exist outside gives the same refusal.
func isEscape(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}

// mkdirs creates .well-known and .well-known/acme-challenge below the root
// as needed, with DirMode regardless of the umask.
func (s *Solver) mkdirs(root *os.Root) error {
	mode := s.DirMode
	if mode == 0 {
		mode = DefaultDirMode
	}
	dir := ""
	for _, elem := range []string{".well-known", "acme-challenge"} {
		dir = filepath.Join(dir, elem)
		err := root.Mkdir(dir, mode)
		switch {
		case err == nil:
			// fchmod through an opened handle: Root.Chmod follows a
			// link swapped in meanwhile (see os.Root).
			d, err := root.Open(dir)
			if err != nil {
				return s.rootErr(err)
			}
			err = d.Chmod(mode)
			d.Close()
			if err != nil {
				return fmt.Errorf("webroot: %w", err)
			}
		case errors.Is(err, fs.ErrExist):
			// Made by the operator, another instance, or a
			// concurrent Present: keep its mode. A link there is
			// checked when it is traversed.
		default:
			return s.rootErr(err)
		}
	}
	return nil
}

// randSuffix names a temporary file (collisions are refused by O_EXCL).
func randSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validToken reports whether s is a base64url token without padding
// (RFC 8555 §8.1: it "MUST NOT contain any characters outside the base64url
// alphabet and MUST NOT include base64 padding characters").
func validToken(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
