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
func (s *Solver) Present(ctx context.Context, chal certfleet.Challenge) error {
	path, err := s.path(chal)
	if err != nil {
		return err
	}
	if err := s.mkdirs(); err != nil {
		return err
	}
	mode := s.Mode
	if mode == 0 {
		mode = DefaultMode
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".certfleet-"+chal.Token+"-*")
	if err != nil {
		return fmt.Errorf("webroot: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	_, err = f.WriteString(chal.KeyAuthorization)
	if err == nil {
		// CreateTemp makes 0600 files; chmod explicitly so the umask
		// has no say.
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("webroot: write %s: %w", tmp, err)
	}
	// No fsync: a token file is useless after a crash anyway.
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("webroot: %w", err)
	}
	return nil
}

// CleanUp removes the token file. A missing file is not an error, so CleanUp
// may be repeated or run for a challenge whose Present failed. The
// directories are left in place: other challenges may be using them.
func (s *Solver) CleanUp(ctx context.Context, chal certfleet.Challenge) error {
	path, err := s.path(chal)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("webroot: %w", err)
	}
	return nil
}

// path validates chal and returns its token file's path.
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
	return filepath.Join(s.Dir, ChallengeDir, chal.Token), nil
}

// mkdirs creates .well-known and .well-known/acme-challenge below Dir as
// needed, with DirMode regardless of the umask. Dir itself must exist.
func (s *Solver) mkdirs() error {
	if st, err := os.Stat(s.Dir); err != nil {
		return fmt.Errorf("webroot: %w", err)
	} else if !st.IsDir() {
		return certfleet.Errorf(certfleet.EINVALID, "webroot %s is not a directory", s.Dir)
	}
	mode := s.DirMode
	if mode == 0 {
		mode = DefaultDirMode
	}
	dir := s.Dir
	for _, elem := range []string{".well-known", "acme-challenge"} {
		dir = filepath.Join(dir, elem)
		err := os.Mkdir(dir, mode)
		switch {
		case err == nil:
			if err := os.Chmod(dir, mode); err != nil {
				return fmt.Errorf("webroot: %w", err)
			}
		case errors.Is(err, fs.ErrExist):
			// Made by the operator, another instance, or a
			// concurrent Present: keep its mode.
		default:
			return fmt.Errorf("webroot: %w", err)
		}
	}
	return nil
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
