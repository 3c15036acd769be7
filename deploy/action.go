package deploy

// What a batch knows of each changed certificate, the actions keyed on
// identifiers, and the variables and list file a batch's commands get.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
)

// Change is a certificate whose files changed, as a batch sees it.
type Change struct {
	// Name is the certificate's name.
	Name string
	// Identifiers are its identifiers in the spec's order; the first is
	// what lematt calls its CN.
	Identifiers []string
	// CertFiles are the absolute paths of its files without the private
	// key (cert.pem, chain.pem, fullchain.pem, copies of other content),
	// KeyFiles of those with it (privkey.pem, key and combined copies).
	CertFiles, KeyFiles []string
	// Env is the environment its own commands got.
	Env []string
}

// NewChange describes issuance iss of spec written to dir (the directory
// Write reported, or "" for a certificate kept in the store only) and to
// copies, whose commands got env.
func NewChange(spec certfleet.CertificateSpec, iss certfleet.Issuance, dir string, copies []Copy, env []string) Change {
	c := Change{Name: spec.Name, Identifiers: certfleet.IdentifierValues(spec.Identifiers), Env: env}
	if dir != "" {
		if len(iss.KeyPEM) > 0 {
			c.KeyFiles = append(c.KeyFiles, filepath.Join(dir, KeyFile))
		}
		c.CertFiles = append(c.CertFiles, filepath.Join(dir, CertFile), filepath.Join(dir, ChainFile), filepath.Join(dir, FullchainFile))
	}
	for _, cp := range copies {
		if cp.HasKey() {
			c.KeyFiles = append(c.KeyFiles, cp.Path)
		} else {
			c.CertFiles = append(c.CertFiles, cp.Path)
		}
	}
	return c
}

// Action is a set of commands run once per batch for the changed
// certificates it matches (lematt's override sections, and its [default]
// with Unmatched), after the certificates' own commands and before the
// batch's [deploy] commands.
type Action struct {
	// Name names it in logs and in CERTFLEET_ACTION. Default: its
	// position, from 1.
	Name string
	// Identifiers are identifiers or patterns: the action is for every
	// changed certificate with an identifier one of them matches (see
	// MatchIdentifier).
	Identifiers []string
	// Unmatched makes the action, which then has no Identifiers, be for
	// the changed certificates with an identifier that no other action's
	// Identifiers match (lematt's [default], which serves every domain
	// without an override).
	Unmatched bool
	// Commands run in order, without a shell; the first failure ends the
	// action.
	Commands [][]string
}

// Select returns the changes a is for, in order; all are the actions in
// force (for Unmatched).
func (a Action) Select(changes []Change, all []Action) []Change {
	var out []Change
	for _, c := range changes {
		if a.Unmatched && slices.ContainsFunc(c.Identifiers, func(id string) bool { return !matchedByAny(all, id) }) ||
			!a.Unmatched && slices.ContainsFunc(c.Identifiers, func(id string) bool { return a.matches(id) }) {
			out = append(out, c)
		}
	}
	return out
}

func (a Action) matches(id string) bool {
	return slices.ContainsFunc(a.Identifiers, func(p string) bool { return MatchIdentifier(p, id) })
}

// matchedByAny reports whether an action with Identifiers matches id.
func matchedByAny(all []Action, id string) bool {
	return slices.ContainsFunc(all, func(a Action) bool { return !a.Unmatched && a.matches(id) })
}

// MatchIdentifier reports whether identifier id matches pattern, ignoring
// case: a pattern without '*' must equal it; each '*' in a pattern stands
// for any run of characters, dots included ("*.example.org" matches
// www.example.org, a.b.example.org and the wildcard identifier
// *.example.org itself, but not example.org).
func MatchIdentifier(pattern, id string) bool {
	p, s := strings.ToLower(pattern), strings.ToLower(id)
	// Greedy matching with backtracking to the last star: linear in
	// practice, at worst len(p)*len(s).
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func changeNames(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// batchVars are the list variables of a batch's run, as name, value.
func batchVars(cs []Change) [][2]string {
	var cn, all, certs, keys []string
	for _, c := range cs {
		if len(c.Identifiers) > 0 {
			cn = append(cn, c.Identifiers[0])
		}
		all = appendNew(all, c.Identifiers...)
		certs = append(certs, c.CertFiles...)
		keys = append(keys, c.KeyFiles...)
	}
	return [][2]string{
		{"CERTFLEET_CHANGED", strings.Join(changeNames(cs), " ")},
		{"CERTFLEET_DOMAINS_CN", strings.Join(cn, " ")},
		{"CERTFLEET_DOMAINS_ALL", strings.Join(all, " ")},
		{"CERTFLEET_CERTS", strings.Join(certs, " ")},
		{"CERTFLEET_KEYS", strings.Join(keys, " ")},
	}
}

// writeChangedFile writes the list of a run's changes to a new temporary
// file (0600; it names key files, never their content) and returns its
// path; the caller removes it.
func writeChangedFile(cs []Change) (string, error) {
	var b bytes.Buffer
	line := func(kind, cert, value string) {
		// A tab or newline in a value would break the format; none
		// occurs in names and identifiers, and paths with them are
		// refused by the configuration.
		fmt.Fprintf(&b, "%s\t%s\t%s\n", kind, cert, value)
	}
	for _, c := range cs {
		if len(c.Identifiers) > 0 {
			line("cn", c.Name, c.Identifiers[0])
		}
		for _, id := range c.Identifiers {
			line("name", c.Name, id)
		}
		for _, f := range c.CertFiles {
			line("cert", c.Name, f)
		}
		for _, f := range c.KeyFiles {
			line("key", c.Name, f)
		}
	}
	f, err := os.CreateTemp("", "certfleet-changed-*.tsv")
	if err != nil {
		return "", fmt.Errorf("write the list of changed certificates: %w", err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("write the list of changed certificates: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write the list of changed certificates: %w", err)
	}
	return f.Name(), nil
}

// appendNew appends the values of vs that dst does not hold yet.
func appendNew(dst []string, vs ...string) []string {
	for _, v := range vs {
		if !slices.Contains(dst, v) {
			dst = append(dst, v)
		}
	}
	return dst
}
