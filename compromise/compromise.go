// Package compromise is the key-compromise playbook, what certfleet
// compromise runs: a private key is out, and in one step certfleet
//  1. blocks the key, so that no certificate is ordered with it again;
//  2. finds every certificate in the archive made with it, whatever its
//     name, and revokes each unexpired one at its CA with reason
//     keyCompromise, signed with the key itself where the archive has it
//     (RFC 8555 §7.6), else with the account;
//  3. makes the certificates that currently use the key due now, so that a
//     scheduler orders replacements with new keys (or orders them itself,
//     with Options.Issue);
//  4. tracks the rollout until every replacement is issued and no agent
//     (from their reports) and no configured endpoint serves a certificate
//     with the key.
//
// It acts through the parts of a running certfleet (Playbook: its store,
// configuration, issuers and scheduler, which cmd takes from a daemon) and
// writes its progress for people. It parses no flags and maps nothing to
// exit statuses (cmd does, from Error.Kind). It neither schedules the
// replacements (manager does) nor deploys them (deploy and the agents do).
package compromise

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/endpoint"
	"github.com/certfleet/certfleet/status"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds the wait for the rollout: long enough for
	// agents on their default long-poll and a daemon on SQLite (which
	// notices due work within its 30 s poll).
	DefaultTimeout = 30 * time.Minute
	// DefaultPoll is how often the store is read while tracking.
	DefaultPoll = 2 * time.Second
	// endpointEvery is how often the endpoints are connected to while
	// tracking (each check is a TLS handshake per endpoint).
	endpointEvery = 10 * time.Second
)

// Kind classifies the errors of Run, for callers that map them to exit
// statuses.
type Kind int

const (
	// Failed: a revocation or another step failed; the other steps were
	// still done.
	Failed Kind = iota + 1
	// BadTarget: the target names no key to act on; nothing was done.
	BadTarget
	// TimedOut: everything was revoked and made due, but when
	// Options.Timeout ran out a replacement was not issued yet or a host
	// still served a compromised certificate.
	TimedOut
)

// Error is an error of Run with its Kind; its text is Err's.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Playbook acts on a key compromise with the parts of a running certfleet;
// cmd wires them from a daemon.Daemon (its Store, CurrentConfig, ACME
// issuers, RecordEvent and scheduler's Wake).
type Playbook struct {
	// Store holds the archive, the jobs, the blocked keys and the agents'
	// reports.
	Store certfleet.Store
	// Config returns the configuration in force: the accounts (which one
	// may revoke a certificate) and the endpoints to check.
	Config func() *config.Config
	// Revoker returns the revoker of a configured account, or a nil
	// interface when there is none.
	Revoker func(account string) Revoker
	// Record records an event in the audit trail; failures are its own
	// to report.
	Record func(context.Context, certfleet.Event)
	// Wake wakes a scheduler running in this process; nil when none does.
	Wake func()
}

// Revoker revokes certificates at a CA (RFC 8555 §7.6), signed with the
// account key (Revoke) or with the certificate's own key (RevokeWithKey);
// acmeissuer.Issuer is one.
type Revoker interface {
	certfleet.Revoker
	RevokeWithKey(ctx context.Context, cert *x509.Certificate, key crypto.Signer, reason int) error
}

// Options tune Run.
type Options struct {
	// Out receives the progress lines.
	Out io.Writer
	// NoWait returns once revoked and made due.
	NoWait bool
	// Timeout bounds the tracking; default DefaultTimeout.
	Timeout time.Duration
	// Issue, when set, orders the replacements in this process once
	// they are due (certfleet compromise --issue runs the daemon's
	// IssueOnce and prints its report); its error is a failed step. Nil
	// leaves them to a running scheduler.
	Issue func(ctx context.Context) error
	// Poll is the tracking interval; default DefaultPoll.
	Poll time.Duration
	// Actor names who acted, for the audit trail; "" leaves it to
	// Playbook.Record (the daemon's fills in the operator, cli:USER).
	Actor string
}

// compromisedSet is what a compromise is about: the keys, every archived
// certificate made with one, and the lineages whose current certificate
// uses one.
type compromisedSet struct {
	keys         []string                           // full key IDs, sorted
	issuances    []certfleet.Issuance               // every archived certificate with one of keys
	fingerprints map[string]certfleet.Issuance      // by fingerprint
	jobs         map[certfleet.JobKey]certfleet.Job // lineages currently on one of keys
}

// findCompromised resolves NAME|KEY-ID to keys and scans the archive for
// every certificate made with them. The scan reads every issuance once
// (O(archive)): a compromise is rare, and the archive keeps no key index.
func (p *Playbook) findCompromised(ctx context.Context, target string) (compromisedSet, error) {
	set := compromisedSet{fingerprints: map[string]certfleet.Issuance{}, jobs: map[certfleet.JobKey]certfleet.Job{}}
	specs, err := p.Store.Specs(ctx, certfleet.SpecFilter{IncludeDisabled: true})
	if err != nil {
		return set, fmt.Errorf("list certificates: %w", err)
	}
	type archived struct {
		iss certfleet.Issuance
		key string
	}
	var all []archived
	for _, sp := range specs {
		list, err := p.Store.Issuances(ctx, certfleet.IssuanceFilter{Spec: sp.Name})
		if err != nil {
			return set, fmt.Errorf("read the archive of %s: %w", sp.Name, err)
		}
		for _, iss := range list {
			id, err := iss.KeyID()
			if err != nil {
				return set, fmt.Errorf("archive: issuance %d of %s: %w", iss.ID, sp.Name, err)
			}
			all = append(all, archived{iss, id})
		}
	}
	byID := map[int64]string{}
	for _, a := range all {
		byID[a.iss.ID] = a.key
	}

	keys := map[string]bool{}
	if _, err := p.Store.Spec(ctx, target); err == nil {
		jobs, err := p.Store.Jobs(ctx, certfleet.JobFilter{Spec: target, IncludeDisabled: true})
		if err != nil {
			return set, fmt.Errorf("list the key types of %s: %w", target, err)
		}
		for _, j := range jobs {
			if j.CurrentID != 0 {
				keys[byID[j.CurrentID]] = true
			}
		}
		if len(keys) == 0 {
			return set, &Error{Kind: BadTarget, Err: fmt.Errorf("certificate %q has no certificate yet, so no key to declare compromised", target)}
		}
	} else if certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		return set, fmt.Errorf("look up certificate %q: %w", target, err)
	} else {
		prefix := strings.ToLower(target)
		if err := certfleet.ValidKeyIDPrefix(prefix); err != nil {
			return set, &Error{Kind: BadTarget, Err: fmt.Errorf("%q is neither a certificate name in the store nor a key ID: %v", target, err)}
		}
		for _, a := range all {
			if strings.HasPrefix(a.key, prefix) {
				keys[a.key] = true
			}
		}
		switch len(keys) {
		case 0:
			return set, &Error{Kind: BadTarget, Err: fmt.Errorf("no certificate in the archive has a key whose ID starts with %q (see the KEY ID column of certfleet status)", prefix)}
		case 1:
		default:
			var ids []string
			for k := range keys {
				ids = append(ids, k)
			}
			slices.Sort(ids)
			return set, &Error{Kind: BadTarget, Err: fmt.Errorf("key ID prefix %q is ambiguous: it matches %s; give more digits", prefix, strings.Join(ids, ", "))}
		}
	}
	for k := range keys {
		set.keys = append(set.keys, k)
	}
	slices.Sort(set.keys)
	for _, a := range all {
		if keys[a.key] {
			set.issuances = append(set.issuances, a.iss)
			set.fingerprints[a.iss.Fingerprint] = a.iss
		}
	}
	jobs, err := p.Store.Jobs(ctx, certfleet.JobFilter{IncludeDisabled: true})
	if err != nil {
		return set, fmt.Errorf("list jobs: %w", err)
	}
	for _, j := range jobs {
		if j.CurrentID != 0 && keys[byID[j.CurrentID]] {
			set.jobs[j.JobKey] = j
		}
	}
	return set, nil
}

// Run declares the key(s) of target compromised and acts on it, in the
// steps of the package doc. target is a
// certificate name (its current keys) or a key ID prefix of at least 8 hex
// digits (certfleet.ValidKeyIDPrefix). Progress goes to o.Out, one line per
// step and per change of the rollout. Its errors are *Error with a Kind,
// or, for a store that fails, plain errors.
func (p *Playbook) Run(ctx context.Context, target string, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	start := time.Now()
	set, err := p.findCompromised(ctx, target)
	if err != nil {
		return err
	}
	w := o.Out
	var failed []string

	// 1. Block first: from here on no instance orders with the key.
	for _, k := range set.keys {
		if err := p.Store.BlockKey(ctx, certfleet.BlockedKey{KeyID: k, Reason: "key compromise", Actor: o.Actor, BlockedAt: time.Now()}); err != nil {
			return &Error{Kind: Failed, Err: fmt.Errorf("block key %s (nothing was revoked): %w", k, err)}
		}
		n := 0
		for _, iss := range set.issuances {
			if id, _ := iss.KeyID(); id == k {
				n++
			}
		}
		fmt.Fprintf(w, "key %s declared compromised: %d certificate(s) in the archive were made with it\n", k, n)
	}
	for jk := range set.jobs {
		p.Record(ctx, certfleet.Event{Kind: certfleet.EventCompromise, Actor: o.Actor, Certificate: jk.Spec, KeyType: jk.KeyType,
			Reason: "keyCompromise", Detail: fmt.Sprintf("key(s) %s declared compromised; %d archived certificate(s) used them", strings.Join(set.keys, ", "), len(set.issuances))})
	}
	if len(set.jobs) == 0 {
		p.Record(ctx, certfleet.Event{Kind: certfleet.EventCompromise, Actor: o.Actor, Reason: "keyCompromise",
			Detail: fmt.Sprintf("key(s) %s declared compromised; %d archived certificate(s) used them, none current", strings.Join(set.keys, ", "), len(set.issuances))})
	}

	// 2. Revoke every unexpired certificate of the key.
	now := time.Now()
	for _, iss := range set.issuances {
		label := fmt.Sprintf("%s/%s serial %s", iss.Spec, iss.KeyType, certfleet.FormatSerial(iss.Serial))
		if !iss.NotAfter.After(now) {
			fmt.Fprintf(w, "expired  %s (expired %s; not revoked)\n", label, status.Time(iss.NotAfter))
			continue
		}
		how, err := p.revokeCompromised(ctx, iss)
		if err != nil {
			fmt.Fprintf(w, "FAILED   %s: %v\n", label, err)
			failed = append(failed, fmt.Sprintf("revoke %s: %v", label, err))
			continue
		}
		fmt.Fprintf(w, "revoked  %s (keyCompromise, %s)\n", label, how)
		p.Record(ctx, certfleet.Event{Kind: certfleet.EventRevoked, Actor: o.Actor, Certificate: iss.Spec, KeyType: iss.KeyType,
			Serial: iss.Serial, IssuanceID: iss.ID, Reason: "keyCompromise", Detail: "certfleet compromise; " + how})
	}

	// 3. Replacements: the current certificates of the key, due now.
	for _, jk := range sortedJobKeys(set.jobs) {
		j := set.jobs[jk]
		switch {
		case j.Disabled:
			fmt.Fprintf(w, "withdrawn %s: not replaced (the certificate is no longer declared)\n", jk)
			continue
		case p.isCSRMode(ctx, jk.Spec):
			fmt.Fprintf(w, "CSR mode %s: the host keeps the key; it must submit a CSR made with a new key (the old CSR is refused now)\n", jk)
		}
		if err := p.Store.RetryNow(ctx, jk); err != nil {
			failed = append(failed, fmt.Sprintf("make %s due: %v", jk, err))
			fmt.Fprintf(w, "FAILED   make %s due: %v\n", jk, err)
			continue
		}
		fmt.Fprintf(w, "due now  %s: a replacement with a new key\n", jk)
	}
	if p.Wake != nil {
		p.Wake() // a scheduler running in this process
	}

	if o.Issue != nil {
		if err := o.Issue(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("issue: %v", err))
		}
	}
	if o.NoWait {
		return compromiseResult(failed, nil)
	}
	return compromiseResult(failed, p.trackRollout(ctx, set, o, start))
}

func compromiseResult(failed []string, trackErr error) error {
	if len(failed) > 0 {
		msg := fmt.Sprintf("%d step(s) failed: %s", len(failed), strings.Join(failed, "; "))
		if trackErr != nil {
			msg += "; and " + trackErr.Error()
		}
		return &Error{Kind: Failed, Err: fmt.Errorf("%s", msg)}
	}
	return trackErr
}

func sortedJobKeys(m map[certfleet.JobKey]certfleet.Job) []certfleet.JobKey {
	keys := make([]certfleet.JobKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b certfleet.JobKey) int { return strings.Compare(a.String(), b.String()) })
	return keys
}

func (p *Playbook) isCSRMode(ctx context.Context, spec string) bool {
	sp, err := p.Store.Spec(ctx, spec)
	return err == nil && len(sp.CSR) > 0
}

// revokeCompromised revokes iss with reason keyCompromise at its CA: signed
// with the compromised key itself when the archive has it (RFC 8555 §7.6;
// it needs no account and shows the CA the key is out), else, or if that
// fails, with the account. It says how it was signed.
func (p *Playbook) revokeCompromised(ctx context.Context, iss certfleet.Issuance) (string, error) {
	issuer, err := p.issuerFor(ctx, iss)
	if err != nil {
		return "", err
	}
	leaf, err := iss.Leaf()
	if err != nil {
		return "", err
	}
	var keyErr error
	if len(iss.KeyPEM) > 0 {
		key, err := certfleet.ParsePrivateKey(iss.KeyPEM)
		if err == nil {
			if keyErr = issuer.RevokeWithKey(ctx, leaf, key, certfleet.ReasonKeyCompromise); keyErr == nil {
				return "signed with the certificate key", nil
			}
		}
	}
	if err := issuer.Revoke(ctx, leaf, certfleet.ReasonKeyCompromise); err != nil {
		if keyErr != nil {
			return "", fmt.Errorf("%w (signed with the certificate key: %v)", err, keyErr)
		}
		return "", err
	}
	return "signed with the account key", nil
}

// issuerFor picks the configured account that can revoke iss: its spec's
// account if that is still at iss's CA, else any account at that CA.
func (p *Playbook) issuerFor(ctx context.Context, iss certfleet.Issuance) (Revoker, error) {
	accounts := p.Config().Accounts
	if sp, err := p.Store.Spec(ctx, iss.Spec); err == nil {
		if a, ok := accounts[sp.AccountName()]; ok && a.Directory == iss.CA && p.Revoker(sp.AccountName()) != nil {
			return p.Revoker(sp.AccountName()), nil
		}
	}
	var names []string
	for n, a := range accounts {
		if a.Directory == iss.CA && p.Revoker(n) != nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no configured account is at its CA %s: add one ([accounts.NAME] directory = %q) or revoke it there by hand", iss.CA, iss.CA)
	}
	slices.Sort(names)
	return p.Revoker(names[0]), nil
}

// rolloutState is one look at the rollout.
type rolloutState struct {
	waiting   []string // lineages without a replacement yet (with their last error)
	replaced  []string
	agents    []string             // agent: certificate, on a compromised certificate
	endpoints []string             // endpoints serving a compromised key
	unknown   []string             // endpoints that could not be checked
	late      []certfleet.Issuance // certificates with the key issued after the scan (revoke them)
	checked   bool                 // endpoints were checked (only once every replacement is issued)
}

func (s rolloutState) done() bool {
	return len(s.waiting) == 0 && len(s.agents) == 0 && len(s.endpoints) == 0
}

func (s rolloutState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replacements %d/%d issued", len(s.replaced), len(s.replaced)+len(s.waiting))
	if len(s.waiting) > 0 {
		fmt.Fprintf(&b, " (waiting: %s)", strings.Join(s.waiting, "; "))
	}
	fmt.Fprintf(&b, "; %d agent(s) on a compromised certificate", len(s.agents))
	if len(s.agents) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(s.agents, ", "))
	}
	if !s.checked {
		return b.String() + "; endpoints are checked once the replacements are issued"
	}
	fmt.Fprintf(&b, "; %d endpoint(s) serving one", len(s.endpoints))
	if len(s.endpoints) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(s.endpoints, ", "))
	}
	if len(s.unknown) > 0 {
		fmt.Fprintf(&b, "; %d endpoint(s) unreachable (%s)", len(s.unknown), strings.Join(s.unknown, ", "))
	}
	return b.String()
}

// trackRollout prints the rollout's progress whenever it changes, until it
// is done (nil) or o.Timeout runs out (exit 3).
func (p *Playbook) trackRollout(ctx context.Context, set compromisedSet, o Options, start time.Time) error {
	deadline := time.Now().Add(o.Timeout)
	checker := &endpoint.Checker{}
	var (
		revokeFailed  []string
		last          string
		lastEndpoints time.Time
		endpoints     []string
		unknown       []string
	)
	for {
		st, err := p.rolloutStore(ctx, &set)
		if err != nil {
			return &Error{Kind: Failed, Err: fmt.Errorf("track the rollout: %w", err)}
		}
		for _, iss := range st.late {
			label := fmt.Sprintf("%s/%s serial %s", iss.Spec, iss.KeyType, certfleet.FormatSerial(iss.Serial))
			how, err := p.revokeCompromised(ctx, iss)
			if err != nil {
				fmt.Fprintf(o.Out, "FAILED   %s (issued with the key while it was being blocked): %v\n", label, err)
				revokeFailed = append(revokeFailed, fmt.Sprintf("revoke %s: %v", label, err))
				continue
			}
			fmt.Fprintf(o.Out, "revoked  %s (issued with the key while it was being blocked; keyCompromise, %s)\n", label, how)
			p.Record(ctx, certfleet.Event{Kind: certfleet.EventRevoked, Actor: o.Actor, Certificate: iss.Spec, KeyType: iss.KeyType,
				Serial: iss.Serial, IssuanceID: iss.ID, Reason: "keyCompromise", Detail: "certfleet compromise; " + how})
		}
		if len(st.waiting) == 0 && time.Since(lastEndpoints) >= endpointEvery {
			endpoints, unknown = p.rolloutEndpoints(ctx, set, checker)
			lastEndpoints = time.Now()
		}
		if len(st.waiting) == 0 {
			st.endpoints, st.unknown, st.checked = endpoints, unknown, true
		}
		line := st.String()
		if line != last {
			fmt.Fprintf(o.Out, "%s  %s\n", time.Now().UTC().Format("15:04:05Z"), line)
			last = line
		}
		if st.done() && st.checked {
			if len(st.unknown) > 0 {
				// Unreachable endpoints do not hold the rollout up, but
				// "no endpoint serves one" would claim what was not seen.
				fmt.Fprintf(o.Out, "done: every replacement is issued and no agent or reachable endpoint serves a compromised certificate (%s); NOT CHECKED, check these by hand: %s\n",
					time.Since(start).Round(time.Second), strings.Join(st.unknown, "; "))
			} else {
				fmt.Fprintf(o.Out, "done: every replacement is issued and no agent or endpoint serves a compromised certificate (%s)\n", time.Since(start).Round(time.Second))
			}
			if len(revokeFailed) > 0 {
				return &Error{Kind: Failed, Err: fmt.Errorf("%s", strings.Join(revokeFailed, "; "))}
			}
			return nil
		}
		if time.Now().After(deadline) {
			hint := ""
			if len(st.waiting) > 0 && o.Issue == nil {
				// The replacements are ordered by a scheduler: this
				// command runs none without --issue.
				hint = "; the replacements are due: is certfleet serve running with this store? Without it, run certfleet issue (or this command with --issue)"
			}
			return &Error{Kind: TimedOut, Err: fmt.Errorf("rollout not finished after %s: %s%s", o.Timeout, line, hint)}
		}
		select {
		case <-ctx.Done():
			return &Error{Kind: Failed, Err: fmt.Errorf("interrupted while tracking the rollout: %s", line)}
		case <-time.After(o.Poll):
		}
	}
}

// rolloutStore reads the replacements and the agents' reports.
func (p *Playbook) rolloutStore(ctx context.Context, set *compromisedSet) (rolloutState, error) {
	var st rolloutState
	specs := map[string]bool{}
	for _, jk := range sortedJobKeys(set.jobs) {
		specs[jk.Spec] = true
		if set.jobs[jk].Disabled {
			continue
		}
		j, err := p.Store.Job(ctx, jk)
		if err != nil {
			return st, err
		}
		compromised := j.CurrentID == 0
		if j.CurrentID != 0 {
			cur, err := p.Store.Issuance(ctx, j.CurrentID)
			if err != nil {
				return st, err
			}
			id, _ := cur.KeyID()
			compromised = slices.Contains(set.keys, id)
			if _, known := set.fingerprints[cur.Fingerprint]; compromised && !known {
				// Issued with the key by an order that was in flight
				// when the key was blocked: revoke it too.
				set.issuances = append(set.issuances, cur)
				set.fingerprints[cur.Fingerprint] = cur
				st.late = append(st.late, cur)
			}
		}
		if compromised {
			why := jk.String()
			if j.LastError != "" {
				why += ": " + status.OneLine(j.LastError, 120)
			}
			st.waiting = append(st.waiting, why)
			continue
		}
		st.replaced = append(st.replaced, jk.String())
	}
	for _, iss := range set.issuances {
		specs[iss.Spec] = true
	}
	fs, ok := p.Store.(certfleet.FleetStore)
	if !ok {
		return st, nil
	}
	names := make([]string, 0, len(specs))
	for s := range specs {
		names = append(names, s)
	}
	slices.Sort(names)
	for _, name := range names {
		reps, err := fs.AgentReports(ctx, certfleet.AgentReportFilter{Certificate: name})
		if err != nil {
			return st, err
		}
		for _, r := range reps {
			if _, old := set.fingerprints[r.Fingerprint]; old && r.Fingerprint != "" {
				st.agents = append(st.agents, fmt.Sprintf("%s: %s/%s serial %s, last seen %s", r.Agent, r.Certificate, r.KeyType, certfleet.FormatSerial(r.Serial), status.Time(r.ReportedAt)))
			}
		}
	}
	return st, nil
}

// rolloutEndpoints connects to the configured endpoints of the affected
// certificates and returns those whose served certificate has a
// compromised key, and those that could not be checked.
func (p *Playbook) rolloutEndpoints(ctx context.Context, set compromisedSet, checker *endpoint.Checker) (bad, unknown []string) {
	specs := map[string]bool{}
	for _, iss := range set.issuances {
		specs[iss.Spec] = true
	}
	keys := map[string]bool{}
	for _, k := range set.keys {
		keys[k] = true
	}
	for _, c := range p.Config().Certificates {
		if !specs[c.Spec.Name] {
			continue
		}
		for _, t := range c.Endpoints {
			targets := []endpoint.Target{t}
			if len(c.Spec.KeyTypes) > 1 {
				targets = nil
				for _, kt := range c.Spec.KeyTypes {
					tf := t
					tf.KeyFamily = kt.Family()
					targets = append(targets, tf)
				}
			}
			for _, tg := range targets {
				label := fmt.Sprintf("%s %s", c.Spec.Name, tg.Address)
				if tg.KeyFamily != "" {
					label += " (" + string(tg.KeyFamily) + ")"
				}
				r, err := checker.Check(ctx, tg)
				if err != nil {
					unknown = append(unknown, label+": "+status.OneLine(err.Error(), 80))
					continue
				}
				if keys[keyIDOf(r.Leaf)] {
					bad = append(bad, fmt.Sprintf("%s serves serial %s", label, certfleet.FormatSerial(r.Serial)))
				}
			}
		}
	}
	return bad, unknown
}

// keyIDOf is the key ID of a certificate, "" if it has none readable.
func keyIDOf(c *x509.Certificate) string {
	id, err := certfleet.KeyID(c.PublicKey)
	if err != nil {
		return ""
	}
	return id
}
