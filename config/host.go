package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// What this host must have for a certificate's files to be written: its
// owner and group, and output paths that are not below a regular file.
// Load cannot check them (a configuration is also read on other hosts:
// inventory diff, status, a CI job), so the commands that write files
// (serve, issue, check; a reload) call CheckHost: a mistake found there is
// reported with its file and line before any order is placed, instead of
// after the CA issued (issue 15).

// certPos is where a [[certificate]] and its output keys are in the file,
// for CheckHost's problems. Lines are 0 where the key is not set in the
// certificate's own table (it comes from [defaults]).
type certPos struct {
	field                                 string // certificate[N]
	line, owner, group, outputDir, copies int
}

// notePositions records where the certificate t decoded into is.
func (d *decoder) notePositions(cfg *Config, t *table) {
	line := func(k string) int {
		if _, ok := t.m[k]; !ok {
			return 0
		}
		return d.lineOf(t.p.key(k))
	}
	cfg.certPos = append(cfg.certPos, certPos{field: t.p.String(), line: d.lineOf(t.p),
		owner: line("owner"), group: line("group"), outputDir: line("output_dir"), copies: line("copy")})
}

// CheckHost checks, on this host, what the certificates' outputs need
// before anything is ordered: their owners and groups exist and their
// output directories and copy paths are not below a regular file. It
// returns an *Error with every problem found (file:line, what and how to
// fix), nil when there is none.
func (c *Config) CheckHost() error {
	var ps []Problem
	for i, cert := range c.Certificates {
		if i >= len(c.certPos) {
			break // not decoded from a file
		}
		pos := c.certPos[i]
		add := func(line int, key, from, format string, args ...any) {
			if line == 0 {
				line = pos.line
				if from != "" {
					format += " (" + key + " comes from " + from + ")"
				}
			}
			ps = append(ps, Problem{File: c.File, Line: line, Field: pos.field + "." + key, Message: fmt.Sprintf(format, args...)})
		}
		if msg := missingUser(cert.Output.Owner); msg != "" {
			add(pos.owner, "owner", "[defaults]", "%s", msg)
		}
		if msg := missingGroup(cert.Output.Group); msg != "" {
			add(pos.group, "group", "[defaults]", "%s", msg)
		}
		if cert.Output.Dir != "" {
			if msg := belowFile(cert.Output.Dir); msg != "" {
				add(pos.outputDir, "output_dir", "[defaults] output_dir", "%s", msg)
			}
		}
		for _, cp := range cert.CopyPaths() {
			if msg := missingUser(cp.Owner); msg != "" {
				add(pos.copies, "copy", "[defaults] copy", "copy %s: %s", cp.Path, msg)
			}
			if msg := missingGroup(cp.Group); msg != "" {
				add(pos.copies, "copy", "[defaults] copy", "copy %s: %s", cp.Path, msg)
			}
			if msg := belowFile(filepath.Dir(cp.Path)); msg != "" {
				add(pos.copies, "copy", "[defaults] copy", "copy %s: %s", cp.Path, msg)
			}
		}
	}
	if len(ps) == 0 {
		return nil
	}
	sortProblems(ps)
	return &Error{Problems: ps}
}

// missingUser says what is wrong with owner on this host, "" when nothing
// is (or it is unset or numeric: a uid needs no entry).
func missingUser(owner string) string {
	if owner == "" || isID(owner) {
		return ""
	}
	_, err := user.Lookup(owner)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return fmt.Sprintf("user %q does not exist on this host: create it, or set owner to a user that exists (or a numeric uid)", owner)
	}
	return "" // the lookup itself failed (NSS down): the write will say
}

func missingGroup(group string) string {
	if group == "" || isID(group) {
		return ""
	}
	_, err := user.LookupGroup(group)
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return fmt.Sprintf("group %q does not exist on this host: create it, or set group to a group that exists (or a numeric gid)", group)
	}
	return ""
}

func isID(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0
}

// belowFile says whether dir cannot be a directory because it, or one of
// its parents, is something else (a regular file); "" when it is or can
// be made one (missing directories are created when writing).
func belowFile(dir string) string {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return ""
		case err == nil:
			if p == filepath.Clean(dir) {
				return fmt.Sprintf("%s is a %s, not a directory: move it away or choose another directory", p, kind(fi.Mode()))
			}
			return fmt.Sprintf("%s cannot be created: %s is a %s, not a directory; move it away or choose another directory", dir, p, kind(fi.Mode()))
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return "" // not ours to judge here (permissions): the write will say
		}
		if filepath.Dir(p) == p {
			return ""
		}
	}
}

func kind(m fs.FileMode) string {
	if m.IsRegular() {
		return "regular file"
	}
	return "file of type " + m.Type().String()
}
