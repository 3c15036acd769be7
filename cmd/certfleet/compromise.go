package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/endpoint"
	"github.com/certfleet/certfleet/status"
)

// Exit codes of certfleet compromise beyond 0 (done), 1 (failed) and 2
// (usage).
const (
	// exitRolloutTimeout: everything was revoked and made due, but when
	// --timeout ran out a replacement was not issued yet or a host still
	// served a compromised certificate.
	exitRolloutTimeout = 3
)

// Defaults of certfleet compromise.
const (
	// compromiseTimeout bounds the wait for the rollout: long enough for
	// agents on their default long-poll and a daemon on SQLite (which
	// notices due work within its 30 s poll).
	compromiseTimeout = 30 * time.Minute
	// compromisePoll is how often the store is read while tracking.
	compromisePoll = 2 * time.Second
	// compromiseEndpointEvery is how often the endpoints are connected to
	// while tracking (each check is a TLS handshake per endpoint).
	compromiseEndpointEvery = 10 * time.Second
)

func cmdCompromise(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compromise", "-config FILE --yes [--no-wait] [--timeout D] [--issue] NAME|KEY-ID", `
A private key is compromised: act on it in one step. NAME is a certificate
(its current keys, one per key type) or KEY-ID a key (the KEY ID column of
certfleet status: the SHA-256 of the public key, or an unambiguous prefix of
at least 8 hex digits).

certfleet then:
 1. blocks the key: no certificate is ever ordered with it again (reuse_key
    certificates get a new key; a CSR with it is refused);
 2. finds every certificate in the archive made with the key, whatever its
    name (older renewals and other certificates too), and revokes each one
    that has not expired at its CA with reason keyCompromise (signed with
    the compromised key itself where the archive has it, else with the
    account); already revoked is fine;
 3. makes the certificates that currently use the key due now: a running
    certfleet serve orders the replacements with new keys (PostgreSQL: at
    once; SQLite: within its 30 s poll), writes the files and wakes the
    agents' long-polls; with --issue this command orders them itself (for
    setups without a daemon: it starts the challenge responders like
    certfleet issue);
 4. tracks the rollout, printing progress, until every replacement is issued
    and no agent (from their reports) and no configured endpoint serves a
    certificate with the key.

Exit status: 0 done (with --no-wait: revoked and made due), 1 a revocation or
another step failed (the rest was still done), 2 usage error, 3 --timeout ran
out before the rollout finished. Requires --yes: revocation cannot be undone.
See docs/compromise.md.`, stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	yes := fs.Bool("yes", false, "confirm: revoke every certificate of the key at its CA (cannot be undone)")
	noWait := fs.Bool("no-wait", false, "exit after revoking and making the replacements due, without tracking the rollout")
	timeout := fs.Duration("timeout", compromiseTimeout, "how long to track the rollout before giving up (exit 3)")
	issue := fs.Bool("issue", false, "order the replacements in this process (starts the challenge responders; for setups without a running certfleet serve)")
	pos, err := parseFlagsArgs(fs, args, stdout, "NAME|KEY-ID")
	if err != nil {
		return err
	}
	if !*yes {
		return &exitError{code: 2, err: fmt.Errorf("certfleet compromise revokes every certificate of the key at the CA, which cannot be undone: add --yes to confirm")}
	}
	if *timeout <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("--timeout must be positive, got %s", *timeout)}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	opts := options(newLogger(stderr, cfg.Log))
	opts.StartResponders = *issue
	d, err := daemon.Open(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer d.Close()
	return compromiser{d}.Compromise(ctx, pos[0], CompromiseOptions{Out: stdout, NoWait: *noWait, Timeout: *timeout, Issue: *issue})
}

// compromiser runs the playbook on a daemon.
type compromiser struct{ *daemon.Daemon }

// CompromiseOptions tune Daemon.Compromise.
type CompromiseOptions struct {
	// Out receives the progress lines.
	Out io.Writer
	// NoWait returns once revoked and made due.
	NoWait bool
	// Timeout bounds the tracking; default compromiseTimeout.
	Timeout time.Duration
	// Issue runs an issue pass here after the jobs are made due.
	Issue bool
	// Poll is the tracking interval; default compromisePoll.
	Poll time.Duration
	// Actor names who acted, for events; default the CLI user.
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
func (d compromiser) findCompromised(ctx context.Context, target string) (compromisedSet, error) {
	set := compromisedSet{fingerprints: map[string]certfleet.Issuance{}, jobs: map[certfleet.JobKey]certfleet.Job{}}
	specs, err := d.Store.Specs(ctx, certfleet.SpecFilter{IncludeDisabled: true})
	if err != nil {
		return set, fmt.Errorf("list certificates: %w", err)
	}
	type archived struct {
		iss certfleet.Issuance
		key string
	}
	var all []archived
	for _, sp := range specs {
		list, err := d.Store.Issuances(ctx, certfleet.IssuanceFilter{Spec: sp.Name})
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
	if _, err := d.Store.Spec(ctx, target); err == nil {
		jobs, err := d.Store.Jobs(ctx, certfleet.JobFilter{Spec: target, IncludeDisabled: true})
		if err != nil {
			return set, fmt.Errorf("list the key types of %s: %w", target, err)
		}
		for _, j := range jobs {
			if j.CurrentID != 0 {
				keys[byID[j.CurrentID]] = true
			}
		}
		if len(keys) == 0 {
			return set, &exitError{code: 2, err: fmt.Errorf("certificate %q has no certificate yet, so no key to declare compromised", target)}
		}
	} else if certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		return set, fmt.Errorf("look up certificate %q: %w", target, err)
	} else {
		prefix := strings.ToLower(target)
		if err := certfleet.ValidKeyIDPrefix(prefix); err != nil {
			return set, &exitError{code: 2, err: fmt.Errorf("%q is neither a certificate name in the store nor a key ID: %v", target, err)}
		}
		for _, a := range all {
			if strings.HasPrefix(a.key, prefix) {
				keys[a.key] = true
			}
		}
		switch len(keys) {
		case 0:
			return set, &exitError{code: 2, err: fmt.Errorf("no certificate in the archive has a key whose ID starts with %q (see the KEY ID column of certfleet status)", prefix)}
		case 1:
		default:
			var ids []string
			for k := range keys {
				ids = append(ids, k)
			}
			slices.Sort(ids)
			return set, &exitError{code: 2, err: fmt.Errorf("key ID prefix %q is ambiguous: it matches %s; give more digits", prefix, strings.Join(ids, ", "))}
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
	jobs, err := d.Store.Jobs(ctx, certfleet.JobFilter{IncludeDisabled: true})
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

// Compromise declares the key(s) of target compromised and acts on it: see
// cmdCompromise. Its error is an *exitError with the documented code.
func (d compromiser) Compromise(ctx context.Context, target string, o CompromiseOptions) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Timeout <= 0 {
		o.Timeout = compromiseTimeout
	}
	if o.Poll <= 0 {
		o.Poll = compromisePoll
	}
	if o.Actor == "" {
		o.Actor = daemon.Operator()
	}
	start := time.Now()
	set, err := d.findCompromised(ctx, target)
	if err != nil {
		return err
	}
	w := o.Out
	var failed []string

	// 1. Block first: from here on no instance orders with the key.
	for _, k := range set.keys {
		if err := d.Store.BlockKey(ctx, certfleet.BlockedKey{KeyID: k, Reason: "key compromise", Actor: o.Actor, BlockedAt: time.Now()}); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("block key %s (nothing was revoked): %w", k, err)}
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
		d.RecordEvent(ctx, certfleet.Event{Kind: certfleet.EventCompromise, Actor: o.Actor, Certificate: jk.Spec, KeyType: jk.KeyType,
			Reason: "keyCompromise", Detail: fmt.Sprintf("key(s) %s declared compromised; %d archived certificate(s) used them", strings.Join(set.keys, ", "), len(set.issuances))})
	}
	if len(set.jobs) == 0 {
		d.RecordEvent(ctx, certfleet.Event{Kind: certfleet.EventCompromise, Actor: o.Actor, Reason: "keyCompromise",
			Detail: fmt.Sprintf("key(s) %s declared compromised; %d archived certificate(s) used them, none current", strings.Join(set.keys, ", "), len(set.issuances))})
	}

	// 2. Revoke every unexpired certificate of the key.
	now := time.Now()
	for _, iss := range set.issuances {
		label := fmt.Sprintf("%s/%s serial %s", iss.Spec, iss.KeyType, iss.Serial)
		if !iss.NotAfter.After(now) {
			fmt.Fprintf(w, "expired  %s (expired %s; not revoked)\n", label, status.Time(iss.NotAfter))
			continue
		}
		how, err := d.revokeCompromised(ctx, iss)
		if err != nil {
			fmt.Fprintf(w, "FAILED   %s: %v\n", label, err)
			failed = append(failed, fmt.Sprintf("revoke %s: %v", label, err))
			continue
		}
		fmt.Fprintf(w, "revoked  %s (keyCompromise, %s)\n", label, how)
		d.RecordEvent(ctx, certfleet.Event{Kind: certfleet.EventRevoked, Actor: o.Actor, Certificate: iss.Spec, KeyType: iss.KeyType,
			Serial: iss.Serial, IssuanceID: iss.ID, Reason: "keyCompromise", Detail: "certfleet compromise; " + how})
	}

	// 3. Replacements: the current certificates of the key, due now.
	for _, jk := range sortedJobKeys(set.jobs) {
		j := set.jobs[jk]
		switch {
		case j.Disabled:
			fmt.Fprintf(w, "withdrawn %s: not replaced (the certificate is no longer declared)\n", jk)
			continue
		case d.isCSRMode(ctx, jk.Spec):
			fmt.Fprintf(w, "CSR mode %s: the host keeps the key; it must submit a CSR made with a new key (the old CSR is refused now)\n", jk)
		}
		if err := d.Store.RetryNow(ctx, jk); err != nil {
			failed = append(failed, fmt.Sprintf("make %s due: %v", jk, err))
			fmt.Fprintf(w, "FAILED   make %s due: %v\n", jk, err)
			continue
		}
		fmt.Fprintf(w, "due now  %s: a replacement with a new key\n", jk)
	}
	d.Manager.Wake() // a scheduler running in this process

	if o.Issue {
		rep, err := d.IssueOnce(ctx)
		status.Pass(w, rep)
		if err != nil {
			failed = append(failed, fmt.Sprintf("issue: %v", err))
		}
	}
	if o.NoWait {
		return compromiseResult(failed, nil)
	}
	return compromiseResult(failed, d.trackRollout(ctx, set, o, start))
}

func compromiseResult(failed []string, trackErr error) error {
	if len(failed) > 0 {
		msg := fmt.Sprintf("%d step(s) failed: %s", len(failed), strings.Join(failed, "; "))
		if trackErr != nil {
			msg += "; and " + trackErr.Error()
		}
		return &exitError{code: 1, err: fmt.Errorf("%s", msg)}
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

func (d compromiser) isCSRMode(ctx context.Context, spec string) bool {
	sp, err := d.Store.Spec(ctx, spec)
	return err == nil && len(sp.CSR) > 0
}

// revokeCompromised revokes iss with reason keyCompromise at its CA: signed
// with the compromised key itself when the archive has it (RFC 8555 §7.6;
// it needs no account and shows the CA the key is out), else, or if that
// fails, with the account. It says how it was signed.
func (d compromiser) revokeCompromised(ctx context.Context, iss certfleet.Issuance) (string, error) {
	issuer, err := d.issuerFor(ctx, iss)
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
func (d compromiser) issuerFor(ctx context.Context, iss certfleet.Issuance) (*acmeissuer.Issuer, error) {
	accounts := d.CurrentConfig().Accounts
	if sp, err := d.Store.Spec(ctx, iss.Spec); err == nil {
		if a, ok := accounts[sp.AccountName()]; ok && a.Directory == iss.CA && d.ACME(sp.AccountName()) != nil {
			return d.ACME(sp.AccountName()), nil
		}
	}
	var names []string
	for n, a := range accounts {
		if a.Directory == iss.CA && d.ACME(n) != nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no configured account is at its CA %s: add one ([accounts.NAME] directory = %q) or revoke it there by hand", iss.CA, iss.CA)
	}
	slices.Sort(names)
	return d.ACME(names[0]), nil
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
func (d compromiser) trackRollout(ctx context.Context, set compromisedSet, o CompromiseOptions, start time.Time) error {
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
		st, err := d.rolloutStore(ctx, &set)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("track the rollout: %w", err)}
		}
		for _, iss := range st.late {
			label := fmt.Sprintf("%s/%s serial %s", iss.Spec, iss.KeyType, iss.Serial)
			how, err := d.revokeCompromised(ctx, iss)
			if err != nil {
				fmt.Fprintf(o.Out, "FAILED   %s (issued with the key while it was being blocked): %v\n", label, err)
				revokeFailed = append(revokeFailed, fmt.Sprintf("revoke %s: %v", label, err))
				continue
			}
			fmt.Fprintf(o.Out, "revoked  %s (issued with the key while it was being blocked; keyCompromise, %s)\n", label, how)
			d.RecordEvent(ctx, certfleet.Event{Kind: certfleet.EventRevoked, Actor: o.Actor, Certificate: iss.Spec, KeyType: iss.KeyType,
				Serial: iss.Serial, IssuanceID: iss.ID, Reason: "keyCompromise", Detail: "certfleet compromise; " + how})
		}
		if len(st.waiting) == 0 && time.Since(lastEndpoints) >= compromiseEndpointEvery {
			endpoints, unknown = d.rolloutEndpoints(ctx, set, checker)
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
				return &exitError{code: 1, err: fmt.Errorf("%s", strings.Join(revokeFailed, "; "))}
			}
			return nil
		}
		if time.Now().After(deadline) {
			hint := ""
			if len(st.waiting) > 0 && !o.Issue {
				// The replacements are ordered by a scheduler: this
				// command runs none without --issue.
				hint = "; the replacements are due: is certfleet serve running with this store? Without it, run certfleet issue (or this command with --issue)"
			}
			return &exitError{code: exitRolloutTimeout, err: fmt.Errorf("rollout not finished after %s: %s%s", o.Timeout, line, hint)}
		}
		select {
		case <-ctx.Done():
			return &exitError{code: 1, err: fmt.Errorf("interrupted while tracking the rollout: %s", line)}
		case <-time.After(o.Poll):
		}
	}
}

// rolloutStore reads the replacements and the agents' reports.
func (d compromiser) rolloutStore(ctx context.Context, set *compromisedSet) (rolloutState, error) {
	var st rolloutState
	specs := map[string]bool{}
	for _, jk := range sortedJobKeys(set.jobs) {
		specs[jk.Spec] = true
		if set.jobs[jk].Disabled {
			continue
		}
		j, err := d.Store.Job(ctx, jk)
		if err != nil {
			return st, err
		}
		compromised := j.CurrentID == 0
		if j.CurrentID != 0 {
			cur, err := d.Store.Issuance(ctx, j.CurrentID)
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
	fs, ok := d.Store.(certfleet.FleetStore)
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
				st.agents = append(st.agents, fmt.Sprintf("%s: %s/%s serial %s, last seen %s", r.Agent, r.Certificate, r.KeyType, r.Serial, status.Time(r.ReportedAt)))
			}
		}
	}
	return st, nil
}

// rolloutEndpoints connects to the configured endpoints of the affected
// certificates and returns those whose served certificate has a
// compromised key, and those that could not be checked.
func (d compromiser) rolloutEndpoints(ctx context.Context, set compromisedSet, checker *endpoint.Checker) (bad, unknown []string) {
	specs := map[string]bool{}
	for _, iss := range set.issuances {
		specs[iss.Spec] = true
	}
	keys := map[string]bool{}
	for _, k := range set.keys {
		keys[k] = true
	}
	for _, c := range d.CurrentConfig().Certificates {
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
					bad = append(bad, fmt.Sprintf("%s serves serial %s", label, r.Serial))
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
