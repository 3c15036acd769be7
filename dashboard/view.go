package dashboard

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
)

// Statuses of a certificate, from best to worst. A certificate with several
// key types shows the worst of theirs.
// They are the store's (certfleet.ListingStatuses), which the list's
// status filter judges in the store.
const (
	StatusOK       = certfleet.ListingOK       // issued, valid, nothing failing or in flight
	StatusRenewing = certfleet.ListingRenewing // valid, and a new certificate is being ordered (an order in flight, a lease held, or the spec changed)
	StatusPending  = certfleet.ListingPending  // never issued yet, and nothing has failed
	StatusFailing  = certfleet.ListingFailing  // the last attempt failed (it will be retried with backoff)
	// StatusExpiring: the current certificate is within the alerts'
	// warning window of its expiry (alert.Settings.Warning, the threshold
	// the expiry incidents use), whether or not its renewal is failing: a
	// certificate this close to its end is never just "ok".
	StatusExpiring = certfleet.ListingExpiring
	StatusExpired  = certfleet.ListingExpired // the current certificate's not-after has passed
)

// Statuses lists the statuses from best to worst.
var Statuses = certfleet.ListingStatuses

// expiryWindow is th's warning window as the store's status filter takes
// it (alert.Settings.Warning).
func expiryWindow(th alert.Settings) certfleet.ExpiryWindow {
	return certfleet.ExpiryWindow{Fixed: th.ExpiryWarning, Max: alert.MaxExpiryWarning}
}

func statusRank(s string) int { return slices.Index(Statuses, s) }

// JobStatus is the status of one job at now. cur is its current
// certificate (nil: none yet), currentRev whether it was made for the
// spec's current revision.
func JobStatus(now time.Time, job certfleet.Job, cur *IssuedCert, currentRev bool) string {
	switch {
	case cur != nil && !now.Before(cur.NotAfter):
		return StatusExpired
	case job.Failures > 0 || (cur != nil && job.Deploy.NotWritten()):
		// Issued but not written (issue 15) is failing as much as not
		// issued: the servers still have the old files, or none.
		return StatusFailing
	case cur == nil:
		return StatusPending
	case !currentRev || job.PendingOrderURL != "" || (job.LeaseOwner != "" && now.Before(job.LeaseUntil)):
		return StatusRenewing
	}
	return StatusOK
}

// ExpirySeverity grades a certificate valid until cur.NotAfter with the
// alert thresholds th, as the expiry incidents do: "" while it is outside
// the warning window, else warning, critical or expired.
func ExpirySeverity(now time.Time, cur *IssuedCert, th alert.Settings) certfleet.Severity {
	if cur == nil {
		return ""
	}
	life := cur.NotAfter.Sub(cur.NotBefore)
	switch left := cur.NotAfter.Sub(now); {
	case left <= 0:
		return certfleet.SeverityExpired
	case left <= th.Critical(life):
		return certfleet.SeverityCritical
	case left <= th.Warning(life):
		return certfleet.SeverityWarning
	}
	return ""
}

// IssuedCert is what the dashboard shows of an issuance: never its key.
type IssuedCert struct {
	Serial, Fingerprint string
	NotBefore, NotAfter time.Time
	IssuedAt            time.Time
}

// issued returns the issuance's public facts, cached by ID (issuances
// never change), so a list of thousands reads each one once.
func (s *Server) issued(ctx context.Context, id int64) (*IssuedCert, error) {
	s.issMu.Lock()
	c, ok := s.iss[id]
	s.issMu.Unlock()
	if ok {
		return &c, nil
	}
	iss, err := s.Store.Issuance(ctx, id)
	if err != nil {
		return nil, err
	}
	c = IssuedCert{Serial: certfleet.FormatSerial(iss.Serial), Fingerprint: iss.Fingerprint, NotBefore: iss.NotBefore, NotAfter: iss.NotAfter, IssuedAt: iss.IssuedAt}
	s.issMu.Lock()
	if s.iss == nil || len(s.iss) >= 200000 {
		s.iss = make(map[int64]IssuedCert)
	}
	s.iss[id] = c
	s.issMu.Unlock()
	return &c, nil
}

// keyView is one key type's certificate and job.
type keyView struct {
	KeyType     certfleet.KeyType
	Status      string
	Cert        *IssuedCert // nil: never issued
	NextAt      time.Time
	Failures    int
	LastError   string
	LastErrorAt time.Time
	OrderURL    string // in flight
	// Attempts are the newest attempts (the certificate page), and
	// Problem the ACME problem type of the newest failed one.
	Attempts []certfleet.Attempt
	Problem  string
	// Deferred is why the next order waits (a rate-limit budget, the
	// CA's Retry-After) when the newest attempt was deferred and the wait
	// is not over; the job's NextAt is when it ends.
	Deferred string
	// Deploy is whether the current certificate is written where the
	// configuration says: issued, not written (Deploy.Error), how often
	// that failed, and the next try on its own schedule.
	Deploy certfleet.DeployState
	// Expiry is the certificate's place in the alert thresholds ("",
	// warning, critical, expired; see ExpirySeverity).
	Expiry certfleet.Severity
	// Reason classifies the newest failure (certfleet.FailureReason, from
	// the audit trail's order_failed event) and Hint says what it means
	// for the next try and what to do; both empty unless failing.
	Reason, Hint string
}

// fleetView is one agent's copy of a certificate.
type fleetView struct {
	certfleet.AgentReport
	Current bool
}

// certView is one certificate (spec) as the pages show it.
type certView struct {
	Spec   certfleet.CertificateSpec
	Names  []string
	Status string
	Keys   []keyView
	Fleet  []fleetView
	// FleetCurrent counts agents with the current certificate; OldAgents
	// names those with an old one (or none).
	FleetCurrent int
	OldAgents    []string
	// Endpoints are the latest checks of its endpoints (certificate page).
	Endpoints []alert.EndpointObservation
	// Waiting are its names whose self-test fails (certificate page):
	// ordered without them until a re-test passes (docs/readiness.md).
	Waiting []certfleet.WaitingName
	// readAttempts: a key is failing or may be deferred, so the list
	// reads its attempts (listedStatus).
	readAttempts bool
}

// waitingNames is what a store that keeps self-test results has
// (certfleet.ReadinessStore).
type waitingNames interface {
	WaitingNames(ctx context.Context, f certfleet.WaitingFilter) ([]certfleet.WaitingName, error)
}

// ShownNames and MoreNames keep long name lists short in the list.
func (c certView) ShownNames() []string { return c.Names[:min(len(c.Names), 3)] }
func (c certView) MoreNames() int       { return max(len(c.Names)-3, 0) }

// Mode is "key", or "csr" when the host keeps the key.
func (c certView) Mode() string {
	if len(c.Spec.CSR) > 0 {
		return "csr"
	}
	return "key"
}

// certStatus fills the key views and status of sp from its jobs.
func (s *Server) certStatus(ctx context.Context, now time.Time, sp certfleet.CertificateSpec, jobs map[certfleet.JobKey]certfleet.Job) (certView, error) {
	v := certView{Spec: sp, Names: certfleet.IdentifierValues(sp.Identifiers), Status: StatusOK}
	for _, k := range sp.JobKeys() {
		job, ok := jobs[k]
		var cert *IssuedCert
		if ok && job.CurrentID != 0 {
			c, err := s.issued(ctx, job.CurrentID)
			if err != nil {
				return v, err
			}
			cert = c
		}
		v.addKey(now, k.KeyType, job, ok, cert, s.Thresholds)
	}
	return v, nil
}

// addKey adds key type kt's view and makes v's status the worse of its
// and the key's. ok is false when the job is not there (yet).
func (v *certView) addKey(now time.Time, kt certfleet.KeyType, job certfleet.Job, ok bool, cert *IssuedCert, th alert.Settings) {
	kv := keyView{KeyType: kt}
	if !ok { // synced a moment ago; the job is being made
		kv.Status = StatusPending
	} else {
		kv.NextAt, kv.Failures, kv.LastError, kv.LastErrorAt, kv.OrderURL = job.NextAt, job.Failures, job.LastError, job.LastErrorAt, job.PendingOrderURL
		kv.Deploy = job.Deploy
		kv.Cert = cert
		kv.Status = JobStatus(now, job, kv.Cert, job.CurrentRevision == v.Spec.Revision(kt))
		kv.Expiry = ExpirySeverity(now, kv.Cert, th)
		if kv.Expiry != "" && statusRank(kv.Status) < statusRank(StatusExpiring) {
			kv.Status = StatusExpiring
		}
	}
	if statusRank(kv.Status) > statusRank(v.Status) {
		v.Status = kv.Status
	}
	v.Keys = append(v.Keys, kv)
}

// inFlight stands for a pending order's URL, which a listing does not
// read (only that there is one).
const inFlight = "(an order in flight)"

// listedStatus is certStatus of a certificate of a store page: its jobs
// and current certificates came with it, so it reads nothing.
func listedStatus(now time.Time, c certfleet.CertificateListing, th alert.Settings) certView {
	sp := c.Spec
	v := certView{Spec: sp, Names: certfleet.IdentifierValues(sp.Identifiers), Status: StatusOK}
	jobs := make(map[certfleet.KeyType]certfleet.ListedJob, len(c.Jobs))
	for _, j := range c.Jobs {
		jobs[j.KeyType] = j
	}
	for _, k := range sp.JobKeys() {
		lj, ok := jobs[k.KeyType]
		job := certfleet.Job{JobKey: k, CurrentRevision: lj.CurrentRevision, NextAt: lj.NextAt,
			Failures: lj.Failures, LastError: lj.LastError, LastErrorAt: lj.LastErrorAt, LeaseOwner: lj.LeaseOwner, LeaseUntil: lj.LeaseUntil,
			Deploy: lj.Deploy, CurrentID: lj.Current.IssuanceID}
		if lj.Pending {
			job.PendingOrderURL = inFlight
		}
		var cert *IssuedCert
		if cur := lj.Current; cur.IssuanceID != 0 {
			cert = &IssuedCert{Serial: cur.Serial, Fingerprint: cur.Fingerprint, NotBefore: cur.NotBefore, NotAfter: cur.NotAfter, IssuedAt: cur.IssuedAt}
		}
		v.addKey(now, k.KeyType, job, ok, cert, th)
		// A job that waits to order (none of this revision yet, next
		// check ahead) may be deferred; a failing one has a problem.
		current := cert != nil && lj.CurrentRevision == sp.Revision(k.KeyType)
		v.readAttempts = v.readAttempts || lj.Failures > 0 || lj.LastError != "" || (!current && lj.NextAt.After(now))
	}
	return v
}

// addListAttempts is addAttempts for a row of the list: only the rows
// whose attempts show (a failing or expired key's problem and hint, a
// waiting key's deferral) are read, the newest one, or five of a failing
// one.
func (s *Server) addListAttempts(ctx context.Context, now time.Time, v *certView) error {
	if !v.readAttempts {
		return nil
	}
	limit := 1
	if v.Status == StatusFailing || v.Status == StatusExpired {
		limit = 5
	}
	return s.addAttempts(ctx, now, v, limit)
}

// budgetWaits is what a store that keeps the rate-limit queues has
// (certfleet.RateLimitStore): the dashboard shows a waiting job's place.
type budgetWaits interface {
	BudgetWaits(ctx context.Context, f certfleet.BudgetWaitFilter) ([]certfleet.BudgetWait, error)
}

// addAttempts reads up to limit attempts of each key type and notes the
// newest failure's problem type and a deferral still in force at now.
func (s *Server) addAttempts(ctx context.Context, now time.Time, v *certView, limit int) error {
	ws, haveWaits := s.Store.(budgetWaits)
	for i := range v.Keys {
		kv := &v.Keys[i]
		atts, err := s.Store.Attempts(ctx, certfleet.JobKey{Spec: v.Spec.Name, KeyType: kv.KeyType}, limit)
		if err != nil {
			return err
		}
		var waits []certfleet.BudgetWait
		if haveWaits && deferredAt(now, kv, atts) {
			// Waiting in a budget's queue: its place as it is now.
			waits, err = ws.BudgetWaits(ctx, certfleet.BudgetWaitFilter{Spec: v.Spec.Name, KeyType: kv.KeyType})
			if err != nil {
				return err
			}
		}
		applyAttempts(now, kv, atts, waits)
		if err := s.addHint(ctx, now, v.Spec.Name, kv); err != nil {
			return err
		}
	}
	return nil
}

// deferredAt is whether kv's newest attempt (of atts) was deferred and the
// deferral holds at now.
func deferredAt(now time.Time, kv *keyView, atts []certfleet.Attempt) bool {
	return len(atts) > 0 && atts[0].Outcome == certfleet.OutcomeDeferred && kv.NextAt.After(now)
}

// applyAttempts sets kv's attempts (newest first), the newest failure's
// problem type and a deferral still in force at now: its place in a
// budget's queue (waits, the job's) or else the deferral's own reason.
func applyAttempts(now time.Time, kv *keyView, atts []certfleet.Attempt, waits []certfleet.BudgetWait) {
	kv.Attempts = atts
	if deferredAt(now, kv, atts) {
		kv.Deferred = atts[0].Error
		if len(waits) > 0 {
			kv.Deferred = waits[0].String()
		}
	}
	for _, a := range atts {
		if a.Outcome == certfleet.OutcomeFailed {
			kv.Problem = a.ProblemType
			break
		}
	}
}

// addFleet sets the agents' copies of v's certificate from reports.
func addFleet(v *certView, reports []certfleet.AgentReport) {
	current := make(map[certfleet.KeyType]string)
	for _, k := range v.Keys {
		if k.Cert != nil {
			current[k.KeyType] = k.Cert.Fingerprint
		}
	}
	old := make(map[string]bool)
	cur := make(map[string]bool)
	for _, r := range reports {
		f := fleetView{AgentReport: r, Current: r.Fingerprint != "" && r.Fingerprint == current[r.KeyType]}
		v.Fleet = append(v.Fleet, f)
		if f.Current {
			cur[r.Agent] = true
		} else {
			old[r.Agent] = true
		}
	}
	// An agent is current only when every key type it reported is.
	for a := range old {
		delete(cur, a)
		v.OldAgents = append(v.OldAgents, a)
	}
	sort.Strings(v.OldAgents)
	v.FleetCurrent = len(cur)
}

// matches reports whether the filter text q appears in the spec's name or
// one of its identifiers (case-insensitively).
func matches(sp certfleet.CertificateSpec, q string) bool {
	if q == "" {
		return true
	}
	q = strings.ToLower(q)
	if strings.Contains(strings.ToLower(sp.Name), q) {
		return true
	}
	for _, id := range sp.Identifiers {
		if strings.Contains(id.Value, q) {
			return true
		}
	}
	return false
}
