package alert

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/certfleet/certfleet"
)

// maxOpen bounds the open incidents one round looks at.
const maxOpen = 100000

// lineage caches what a round knows of one (spec, key type).
type lineage struct {
	job     certfleet.Job
	current certfleet.Issuance
	archive []certfleet.Issuance // newest first, loaded on demand
}

// round holds one evaluation's reads.
type round struct {
	e        *Evaluator
	now      time.Time
	lineages map[certfleet.JobKey]*lineage
	bySpec   map[string][]*lineage
	archives map[certfleet.JobKey]archived // read or reused this round: the next round's cache
	// scope holds the certificates the round looks at; nil: every one.
	scope map[string]bool
}

// in reports whether the round looks at certificate name.
func (r *round) in(name string) bool { return r.scope == nil || r.scope[name] }

// Evaluate looks at the store (and the endpoint observations) and opens,
// updates and resolves incidents. It sends nothing.
func (e *Evaluator) Evaluate(ctx context.Context) (Report, error) {
	return e.evaluate(ctx, nil)
}

// evaluate is Evaluate over the certificates in scope (nil: all). Every
// condition is about one certificate, so a round over some certificates
// opens, updates and resolves exactly what a full round would for them.
func (e *Evaluator) evaluate(ctx context.Context, scope map[string]bool) (Report, error) {
	e.init()
	var rep Report
	r := &round{e: e, now: e.Now(), lineages: map[certfleet.JobKey]*lineage{}, bySpec: map[string][]*lineage{},
		archives: map[certfleet.JobKey]archived{}, scope: scope}
	open, err := e.Store.Incidents(ctx, certfleet.IncidentFilter{OpenOnly: true, Limit: maxOpen})
	if err != nil {
		return rep, fmt.Errorf("list open incidents: %w", err)
	}
	before := make(map[string]certfleet.Incident, len(open))
	for _, i := range open {
		if r.in(i.Certificate) {
			before[i.Key] = i
		}
	}
	reports, err := r.agentReports(ctx)
	if err != nil {
		return rep, err
	}
	var observed []EndpointObservation
	if e.Endpoints != nil {
		for _, o := range e.Endpoints.EndpointObservations() {
			if r.in(o.Certificate) {
				observed = append(observed, o)
			}
		}
	}
	if scope == nil {
		err = r.load(ctx, reports, observed)
	} else {
		err = r.loadScope(ctx)
	}
	if err != nil {
		return rep, err
	}
	found := map[string]certfleet.Incident{}
	add := func(i certfleet.Incident) { found[i.Key] = i }
	r.expiry(add)
	if scope == nil {
		err = r.notWritten(ctx, add)
	} else {
		r.notWrittenScope(add)
	}
	if err != nil {
		return rep, err
	}
	if err := r.agents(ctx, reports, add); err != nil {
		return rep, err
	}
	// Endpoint incidents are judged by their own observations: known
	// holds the endpoints observed (not stale) and when.
	known, listed := map[string]time.Time{}, map[string]bool{}
	if e.Endpoints != nil {
		if err := r.endpoints(ctx, observed, add, known, listed); err != nil {
			return rep, err
		}
	}

	for key, obs := range found {
		inc, applied, err := e.Store.ObserveIncident(ctx, obs)
		if err != nil {
			return rep, fmt.Errorf("record incident %s: %w", key, err)
		}
		if !applied {
			continue
		}
		prev, was := before[key]
		switch {
		case !was:
			rep.Opened++
			e.Logger.Warn("alert incident opened", "incident", inc, "summary", inc.Summary)
		case prev.Severity != inc.Severity:
			rep.Updated++
			e.Logger.Warn("alert incident severity changed", "incident", inc, "from", string(prev.Severity), "summary", inc.Summary)
		default:
			rep.Updated++
		}
	}
	e.cacheMu.Lock()
	if scope != nil { // the other lineages' entries stay as the last round left them
		for k, a := range e.archives {
			if _, ok := r.archives[k]; !ok && !scope[k.Spec] {
				r.archives[k] = a
			}
		}
	}
	e.archives = r.archives // only the lineages still stale: the cache stays small
	e.cacheMu.Unlock()
	for key, inc := range before {
		if _, still := found[key]; still {
			continue
		}
		at := r.now
		if inc.Kind == certfleet.IncidentEndpointStale {
			if e.Endpoints == nil {
				continue // another instance's business
			}
			if checked, ok := known[key]; ok {
				at = checked
			} else if listed[key] {
				continue // still configured, no new evidence either way
			} // else no longer configured: resolved now

		}
		ok, err := e.Store.ResolveIncident(ctx, inc.ID, at)
		if err != nil {
			return rep, fmt.Errorf("resolve incident %d: %w", inc.ID, err)
		}
		if ok {
			rep.Resolved++
			e.Logger.Info("alert incident resolved", "incident", inc, "opened_at", inc.OpenedAt)
		}
	}
	return rep, nil
}

// pageSize is how many current certificates a round reads at a time.
const pageSize = 1000

// load reads the lineages the round looks at, a page of current
// certificates at a time: those expiry() may report (expired, or within
// their warning window and failing or not scheduled in time), which the
// store selects by expiry (nothing expires later than the widest warning
// window and is still reported), and those agents reported on or
// endpoints were observed for. A round holds those lineages and a page,
// not every certificate (issue 13).
func (r *round) load(ctx context.Context, reports []certfleet.AgentReport, observed []EndpointObservation) error {
	add := func(l *lineage) {
		if _, ok := r.lineages[l.job.JobKey]; ok {
			return
		}
		r.lineages[l.job.JobKey] = l
		r.bySpec[l.job.Spec] = append(r.bySpec[l.job.Spec], l)
	}
	widest := r.e.Settings.Warning(math.MaxInt64)
	// By the index of not-after: a round reads what is near its end,
	// not every certificate (issue 13).
	f := certfleet.CurrentFilter{NotAfterBefore: r.now.Add(widest + time.Second), ByExpiry: true, Limit: pageSize}
	err := certfleet.EachCurrentCertificate(ctx, r.e.Store, f, func(c certfleet.CurrentCertificate) error {
		if l := newLineage(c); r.expiring(l) {
			add(l)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list current certificates expiring soon: %w", err)
	}
	// The lineages agents reported on, and every lineage of a
	// certificate whose endpoints were observed.
	reported, checked := map[certfleet.JobKey]bool{}, map[string]bool{}
	specs := map[string]bool{}
	for _, rep := range reports {
		reported[certfleet.JobKey{Spec: rep.Certificate, KeyType: rep.KeyType}] = true
		specs[rep.Certificate] = true
	}
	for _, o := range observed {
		checked[o.Certificate] = true
		specs[o.Certificate] = true
	}
	keep := func(c certfleet.CurrentCertificate) error {
		if checked[c.Spec] || reported[certfleet.JobKey{Spec: c.Spec, KeyType: c.KeyType}] {
			add(newLineage(c))
		}
		return nil
	}
	if len(specs) > fewSpecs {
		// Many: one pass over every page costs less than a lookup each.
		if err := certfleet.EachCurrentCertificate(ctx, r.e.Store, certfleet.CurrentFilter{Limit: pageSize}, keep); err != nil {
			return fmt.Errorf("list current certificates: %w", err)
		}
		return nil
	}
	for name := range specs {
		if err := certfleet.EachCurrentCertificate(ctx, r.e.Store, certfleet.CurrentFilter{Spec: name, Limit: pageSize}, keep); err != nil {
			return fmt.Errorf("current certificates of %s: %w", name, err)
		}
	}
	return nil
}

// fewSpecs is how many certificates load looks up one by one for agents
// and endpoints; for more it reads every page instead.
const fewSpecs = 100

// agentReports reads the agents' reports on the round's certificates.
func (r *round) agentReports(ctx context.Context) ([]certfleet.AgentReport, error) {
	fs, ok := r.e.Store.(certfleet.FleetStore)
	if !ok {
		return nil, nil
	}
	if r.scope == nil {
		reports, err := fs.AgentReports(ctx, certfleet.AgentReportFilter{})
		if err != nil {
			return nil, fmt.Errorf("list agent reports: %w", err)
		}
		return reports, nil
	}
	var reports []certfleet.AgentReport
	for name := range r.scope {
		got, err := fs.AgentReports(ctx, certfleet.AgentReportFilter{Certificate: name})
		if err != nil {
			return nil, fmt.Errorf("agent reports on %s: %w", name, err)
		}
		reports = append(reports, got...)
	}
	return reports, nil
}

// loadScope reads every lineage of the round's certificates (load's
// selection is for a full round: a round over some certificates looks at
// all of theirs, whether or not they are near expiry).
func (r *round) loadScope(ctx context.Context) error {
	for name := range r.scope {
		err := certfleet.EachCurrentCertificate(ctx, r.e.Store, certfleet.CurrentFilter{Spec: name, Limit: pageSize}, func(c certfleet.CurrentCertificate) error {
			l := newLineage(c)
			r.lineages[l.job.JobKey] = l
			r.bySpec[l.job.Spec] = append(r.bySpec[l.job.Spec], l)
			return nil
		})
		if err != nil {
			return fmt.Errorf("current certificates of %s: %w", name, err)
		}
	}
	return nil
}

// newLineage is what a round knows of c's lineage.
func newLineage(c certfleet.CurrentCertificate) *lineage {
	key := certfleet.JobKey{Spec: c.Spec, KeyType: c.KeyType}
	return &lineage{
		job: certfleet.Job{JobKey: key, CurrentID: c.IssuanceID, NextAt: c.NextAt, Failures: c.Failures, LastError: c.LastError, Deploy: c.Deploy},
		current: certfleet.Issuance{ID: c.IssuanceID, Spec: c.Spec, KeyType: c.KeyType, Serial: c.Serial,
			Fingerprint: c.Fingerprint, NotBefore: c.NotBefore, NotAfter: c.NotAfter, IssuedAt: c.IssuedAt},
	}
}

// summary drops what alerts never need of an issuance, above all its
// private key, which must not linger in memory.
func summary(iss certfleet.Issuance) certfleet.Issuance {
	iss.KeyPEM, iss.ChainPEM, iss.Identifiers = nil, nil, nil
	return iss
}

func lifetime(iss certfleet.Issuance) time.Duration { return iss.NotAfter.Sub(iss.NotBefore) }

// severity grades a certificate expiring at notAfter, of lifetime life.
func (r *round) severity(notAfter time.Time, life time.Duration) certfleet.Severity {
	switch left := notAfter.Sub(r.now); {
	case left <= 0:
		return certfleet.SeverityExpired
	case left <= r.e.Settings.Critical(life):
		return certfleet.SeverityCritical
	}
	return certfleet.SeverityWarning
}

// expiry finds current certificates within the warning window whose
// renewal is failing, or is not even scheduled before the certificate turns
// critical (deferred by a rate-limit budget, a Retry-After, a late
// renew_before), and expired ones.
func (r *round) expiry(add func(certfleet.Incident)) {
	for _, l := range r.lineages {
		if !r.expiring(l) {
			continue
		}
		iss, j := l.current, l.job
		left := iss.NotAfter.Sub(r.now)
		late := r.late(l)
		sev := r.severity(iss.NotAfter, lifetime(iss))
		var summary string
		if sev == certfleet.SeverityExpired {
			summary = fmt.Sprintf("certificate %s (%s, serial %s) expired at %s", j.Spec, j.KeyType, certfleet.FormatSerial(iss.Serial), stamp(iss.NotAfter))
		} else {
			summary = fmt.Sprintf("certificate %s (%s, serial %s) expires in %s, at %s", j.Spec, j.KeyType, certfleet.FormatSerial(iss.Serial), human(left), stamp(iss.NotAfter))
		}
		if j.Failures > 0 {
			summary += fmt.Sprintf(", and renewing it failed %d time(s) in a row: %s", j.Failures, oneLine(j.LastError, 300))
		} else if late && sev != certfleet.SeverityExpired {
			summary += fmt.Sprintf(", and its renewal is not scheduled before %s", stamp(j.NextAt))
		}
		add(certfleet.Incident{
			Key:  certfleet.IncidentKey(certfleet.IncidentExpiry, j.Spec, j.KeyType, ""),
			Kind: certfleet.IncidentExpiry, Certificate: j.Spec, KeyType: j.KeyType,
			Severity: sev, Summary: summary, Serial: iss.Serial, NotAfter: iss.NotAfter,
			Failures: j.Failures, LastError: oneLine(j.LastError, 1000), UpdatedAt: r.now,
		})
	}
}

// late reports whether the lineage's next renewal is not scheduled before
// its certificate turns critical.
func (r *round) late(l *lineage) bool {
	return l.job.NextAt.After(l.current.NotAfter.Add(-r.e.Settings.Critical(lifetime(l.current))))
}

// expiring reports whether expiry() reports the lineage: its certificate
// expired, or is within its warning window and its renewal is failing or
// late.
func (r *round) expiring(l *lineage) bool {
	left := l.current.NotAfter.Sub(r.now)
	return left <= 0 || (l.job.Failures > 0 || r.late(l)) && left <= r.e.Settings.Warning(lifetime(l.current))
}

// archive returns the lineage's issuances, newest first. They are read
// from the store once per current issuance, not every round: a stale agent
// or endpoint may stay stale for its whole grace period, and agents' check-ins
// wake rounds up to once a second.
func (r *round) archive(ctx context.Context, l *lineage) ([]certfleet.Issuance, error) {
	if l.archive != nil {
		return l.archive, nil
	}
	r.e.cacheMu.Lock()
	a, ok := r.e.archives[l.job.JobKey]
	r.e.cacheMu.Unlock()
	if !ok || a.current != l.job.CurrentID {
		list, err := r.e.Store.Issuances(ctx, certfleet.IssuanceFilter{Spec: l.job.Spec, KeyType: l.job.KeyType, Limit: 100})
		if err != nil {
			return nil, fmt.Errorf("list issuances of %s: %w", l.job.JobKey, err)
		}
		for i := range list {
			list[i] = summary(list[i]) // no key, no chain: IDs, serials, fingerprints and times
		}
		a = archived{current: l.job.CurrentID, list: list}
	}
	r.archives[l.job.JobKey] = a
	l.archive = a.list
	return l.archive, nil
}

// replacedAt returns when the certificate old stopped being current: when
// the next issuance of its lineage was made. It is the current
// certificate's issue time when old is not in the archive (nothing
// installed, or not ours).
func (r *round) replacedAt(ctx context.Context, l *lineage, match func(certfleet.Issuance) bool) (certfleet.Issuance, time.Time, error) {
	list, err := r.archive(ctx, l)
	if err != nil {
		return certfleet.Issuance{}, time.Time{}, err
	}
	for k, iss := range list {
		if match(iss) {
			if k == 0 { // it is the current one after all
				return iss, time.Time{}, nil
			}
			return iss, list[k-1].IssuedAt, nil
		}
	}
	return certfleet.Issuance{}, l.current.IssuedAt, nil
}

// agents finds agents whose installed copy was replaced longer than the
// grace period ago.
func (r *round) agents(ctx context.Context, reports []certfleet.AgentReport, add func(certfleet.Incident)) error {
	for _, rep := range reports {
		l, ok := r.lineages[certfleet.JobKey{Spec: rep.Certificate, KeyType: rep.KeyType}]
		if !ok || rep.Fingerprint == l.current.Fingerprint {
			continue
		}
		old, since, err := r.replacedAt(ctx, l, func(iss certfleet.Issuance) bool {
			return rep.Fingerprint != "" && iss.Fingerprint == rep.Fingerprint
		})
		if err != nil {
			return err
		}
		grace := r.e.Settings.Grace(lifetime(l.current))
		if since.IsZero() || r.now.Sub(since) <= grace {
			continue
		}
		serial := rep.Serial
		if serial == "" && old.Serial != "" {
			serial = old.Serial
		}
		var what string
		if rep.Fingerprint == "" {
			what = "has nothing installed"
		} else {
			what = fmt.Sprintf("still has serial %s installed", certfleet.FormatSerial(serial))
		}
		summary := fmt.Sprintf("agent %s %s for %s (%s), %s after serial %s replaced it (grace %s); last check-in %s",
			rep.Agent, what, rep.Certificate, rep.KeyType, human(r.now.Sub(since)), certfleet.FormatSerial(l.current.Serial), human(grace), stamp(rep.ReportedAt))
		if rep.Error != "" {
			summary += "; its last error: " + oneLine(rep.Error, 300)
		}
		sev := certfleet.SeverityWarning
		if !rep.NotAfter.IsZero() {
			sev = r.severity(rep.NotAfter, lifetime(l.current))
		}
		add(certfleet.Incident{
			Key:  certfleet.IncidentKey(certfleet.IncidentAgentStale, rep.Certificate, rep.KeyType, rep.Agent),
			Kind: certfleet.IncidentAgentStale, Certificate: rep.Certificate, KeyType: rep.KeyType, Subject: rep.Agent,
			Severity: sev, Summary: summary, Serial: serial, NotAfter: rep.NotAfter,
			Failures: l.job.Failures, LastError: oneLine(rep.Error, 1000), UpdatedAt: r.now,
		})
	}
	return nil
}

// endpoints finds endpoints that served a replaced certificate, checked
// longer than the grace period after it was replaced. Each observation
// counts as of its check: known gets the check time of the endpoints
// observed serving something else (evidence that an incident cleared), and
// listed every endpoint configured.
func (r *round) endpoints(ctx context.Context, observed []EndpointObservation, add func(certfleet.Incident), known map[string]time.Time, listed map[string]bool) error {
	for _, o := range observed {
		// The incident is per endpoint, whatever key type it serves.
		key := certfleet.IncidentKey(certfleet.IncidentEndpointStale, o.Certificate, "", o.Endpoint)
		listed[key] = true
		lines := r.bySpec[o.Certificate]
		if o.CheckedAt.IsZero() || len(lines) == 0 {
			continue
		}
		switch o.Status {
		case "stale":
		case "", "error", "unknown":
			continue // no evidence either way
		default:
			known[key] = o.CheckedAt
			continue
		}
		var (
			since time.Time
			cur   = lines[0].current
			ours  bool
		)
		if o.ServedIssuance != 0 {
			for _, l := range lines {
				list, err := r.archive(ctx, l)
				if err != nil {
					return err
				}
				if !containsID(list, o.ServedIssuance) {
					continue
				}
				_, s, err := r.replacedAt(ctx, l, func(iss certfleet.Issuance) bool { return iss.ID == o.ServedIssuance })
				if err != nil {
					return err
				}
				since, cur, ours = s, l.current, true
				break
			}
		}
		if ours && since.IsZero() {
			continue // what it serves has become current again
		}
		if !ours { // not ours: stale since certfleet's current one was issued
			for _, l := range lines {
				if since.IsZero() || l.current.IssuedAt.Before(since) {
					since, cur = l.current.IssuedAt, l.current
				}
			}
		}
		grace := r.e.Settings.Grace(lifetime(cur))
		if o.CheckedAt.Sub(since) <= grace {
			continue
		}
		sev := certfleet.SeverityWarning
		if !o.ServedNotAfter.IsZero() {
			sev = r.severity(o.ServedNotAfter, lifetime(cur))
		}
		add(certfleet.Incident{
			Key:  key,
			Kind: certfleet.IncidentEndpointStale, Certificate: o.Certificate, Subject: o.Endpoint,
			Severity: sev, Serial: o.ServedSerial, NotAfter: o.ServedNotAfter,
			Summary: fmt.Sprintf("endpoint %s of %s, checked at %s, %s after the certificate it serves was replaced (grace %s): %s",
				o.Endpoint, o.Certificate, stamp(o.CheckedAt), human(o.CheckedAt.Sub(since)), human(grace), oneLine(o.Message, 400)),
			UpdatedAt: o.CheckedAt,
		})
	}
	return nil
}

func containsID(list []certfleet.Issuance, id int64) bool {
	for _, iss := range list {
		if iss.ID == id {
			return true
		}
	}
	return false
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// human rounds a duration for people: days, hours and minutes, or seconds.
func human(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + human(-d)
	case d >= 48*time.Hour:
		days := d / (24 * time.Hour)
		if h := (d % (24 * time.Hour)).Round(time.Hour) / time.Hour; h > 0 {
			return fmt.Sprintf("%dd%dh", days, h)
		}
		return fmt.Sprintf("%dd", days)
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	default:
		return d.Round(time.Second).String()
	}
}

// oneLine squeezes s onto one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
