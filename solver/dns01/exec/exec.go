// Package exec is a dns01.Provider that runs a program of yours to add and
// remove TXT records, for DNS set-ups no other provider covers.
//
// The program is called, without a shell, as
//
//	PROGRAM present FQDN VALUE
//	PROGRAM cleanup FQDN VALUE
//
// where FQDN is the record's fully-qualified name with its trailing dot
// ("_acme-challenge.example.org.", or a CNAME delegation's target) and
// VALUE the TXT value. This is the convention of lego's exec provider
// (default mode), so its scripts work unchanged. The environment also
// carries CERTFLEET_DNS_ACTION (present or cleanup), CERTFLEET_DNS_FQDN,
// CERTFLEET_DNS_VALUE, CERTFLEET_DNS_ZONE (the zone holding FQDN, found by
// the SOA walk, with its trailing dot) and CERTFLEET_DNS_DOMAIN (the
// identifier). Exit status 0 means done; anything else fails, with the end
// of the program's stderr in the error. The program must keep other TXT
// values at FQDN (a wildcard and its apex share one name) and must treat
// the cleanup of a missing record as success.
//
// It does not wait for propagation: dns01.Solver does.
package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/dns01"
)

// DefaultTimeout bounds one run of the program.
const DefaultTimeout = 2 * time.Minute

// stderrTail is how much of the program's stderr an error quotes.
const stderrTail = 1024

// Provider runs Program. Safe for concurrent use (runs may overlap: the
// program must cope, e.g. with flock).
type Provider struct {
	// Program is the path of the program. Required.
	Program string
	// Timeout bounds each run; the program is killed after it. Default
	// DefaultTimeout.
	Timeout time.Duration
	// Env adds "KEY=value" entries to the program's environment, which is
	// otherwise certfleet's own.
	Env []string
}

var _ dns01.Provider = (*Provider)(nil)

// Present runs "PROGRAM present FQDN VALUE".
func (p *Provider) Present(ctx context.Context, rec dns01.Record) error {
	return p.run(ctx, "present", rec)
}

// CleanUp runs "PROGRAM cleanup FQDN VALUE".
func (p *Provider) CleanUp(ctx context.Context, rec dns01.Record) error {
	return p.run(ctx, "cleanup", rec)
}

func (p *Provider) run(ctx context.Context, action string, rec dns01.Record) error {
	if p.Program == "" {
		return errors.New("exec provider: no program configured")
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := osexec.CommandContext(ctx, p.Program, action, rec.FQDN, rec.Value)
	cmd.Env = certfleet.ChildEnv(os.Environ(), p.Env...)
	cmd.Env = append(cmd.Env,
		"CERTFLEET_DNS_ACTION="+action,
		"CERTFLEET_DNS_FQDN="+rec.FQDN,
		"CERTFLEET_DNS_VALUE="+rec.Value,
		"CERTFLEET_DNS_ZONE="+rec.Zone,
		"CERTFLEET_DNS_DOMAIN="+rec.Domain,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second // a grandchild holding stderr open must not hang us
	err := cmd.Run()
	if err == nil {
		return nil
	}
	what := err.Error()
	if ctx.Err() == context.DeadlineExceeded {
		what = fmt.Sprintf("killed after %s (timeout)", timeout)
	}
	if tail := Tail(stderr.Bytes(), stderrTail); tail != "" {
		return fmt.Errorf("%s %s %s: %s; stderr: %s", p.Program, action, rec.FQDN, what, tail)
	}
	return fmt.Errorf("%s %s %s: %s (no output on stderr)", p.Program, action, rec.FQDN, what)
}

// Tail returns the last n bytes of a program's output as one printable
// line: invalid UTF-8 and control characters become '?' or spaces, runs
// of white space one space, and a cut is marked with "…".
func Tail(out []byte, n int) string {
	cut := false
	if len(out) > n {
		out = out[len(out)-n:]
		cut = true
		// Do not start in the middle of a character.
		for i := 0; i < utf8.UTFMax && len(out) > 0 && !utf8.RuneStart(out[0]); i++ {
			out = out[1:]
		}
	}
	var b strings.Builder
	space := false
	for len(out) > 0 {
		r, size := utf8.DecodeRune(out)
		out = out[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			r = '?'
		case unicode.IsSpace(r):
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		case !unicode.IsPrint(r):
			r = '?'
		}
		space = false
		b.WriteRune(r)
	}
	s := strings.TrimSpace(b.String())
	if cut && s != "" {
		s = "…" + s
	}
	return s
}
