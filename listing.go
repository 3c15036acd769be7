package certfleet

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// NameIndex finds certificates by name and pages through them in the
// store, through indexes: a lookup or a page costs about the same with 10
// or 100,000 specs (issue 13). Safe for concurrent use.
type NameIndex interface {
	// SpecsByName returns the enabled specs that hold name (an
	// identifier's value, exactly) among their identifiers, ordered by
	// spec name: usually one, none when the name is not managed. The
	// index is written in the same transaction as the specs.
	SpecsByName(ctx context.Context, name string) ([]CertificateSpec, error)
	// CertificatePage returns the certificates q selects, in spec name
	// order after q.After (or the last ones before q.Before), at most
	// q.Limit, each with its jobs and their current certificates, and the
	// cursor to go on from. Every page is a bounded number of index reads
	// whatever the filter: a page may come back short (even empty) with
	// Next set when the filters are rare among what it examined.
	// EINVALID for a bad query.
	CertificatePage(ctx context.Context, q CertificateQuery) (ListingPage, error)
}

// NameWatcher is an optional interface of a Store: it says which names'
// certificates changed, on any instance sharing the store, so that caches
// keyed by name drop just those.
type NameWatcher interface {
	// WatchNames calls fn, soon after a commit that put, changed or
	// withdrew specs, with the names they held before or hold after: on
	// every instance sharing the store, this one included. nil names
	// means any name may have changed (many at once, or notifications
	// were lost while reconnecting): drop everything. fn runs on the
	// store's goroutine and must return quickly. stop ends the calls.
	WatchNames(fn func(names []string)) (stop func())
}

// Limits of a CertificateQuery page.
const (
	DefaultCertificatePage = 100
	MaxCertificatePage     = 1000
)

// CertificateQuery selects and pages certificates (specs) for the
// listings (API, dashboard, status): filtered, ordered by name and cut in
// the store. A page starts after the name of the previous page's last
// certificate (a keyset cursor: stable while certificates are added and
// withdrawn, and as cheap deep into the list as at its start).
type CertificateQuery struct {
	// Tenant, when set, selects that tenant's certificates only.
	Tenant string
	// Source, when set, selects the specs of one source (SourceAPI,
	// SourceConfig, an inventory source).
	Source string
	// Search, when set, selects the enabled certificates that one of
	// SearchTerms of their name and identifiers equals (after
	// NormalizeSearch): a whole name, whole labels at its start or end,
	// or one label. "www.example.com" is found by www.example.com,
	// example.com, com, www.example, www and example; not by "exam" or
	// "ample.com". Whole labels, not substrings, because that is what an
	// index answers in name order at any depth (issue 13).
	Search string
	// Failing selects the certificates with an enabled job whose last
	// attempt failed (failures > 0), through an index of the failing
	// jobs.
	Failing bool
	// Status, when set, selects the certificates whose status at Now is
	// this one (one of ListingStatuses; CertificateListing.Status), judged
	// in the store on each row the page's index walk reaches, so a page
	// holds only matches (it may be short, with Next set, when they are
	// rare). EINVALID for another value.
	Status string
	// Now is when Status is judged: time.Now() when zero.
	Now time.Time
	// Warning is the window before expiry that makes a certificate
	// "expiring" for Status.
	Warning ExpiryWindow
	// IncludeDisabled lists withdrawn certificates (and disabled jobs)
	// too.
	IncludeDisabled bool
	// Chains reads each current certificate's PEM chain too (for what
	// needs the leaf: its key ID).
	Chains bool
	// After is the name of the last certificate of the previous page; ""
	// starts at the beginning.
	After string
	// Before, when set (and After is not), pages backwards: the page is
	// the last certificates before it (still in name order), and Next of
	// the result goes on backwards. A "previous" link gives the first
	// name of the page shown.
	Before string
	// Limit is the most returned: DefaultCertificatePage when 0, at most
	// MaxCertificatePage.
	Limit int
}

// CertificateListing is one certificate of a page: its spec and its jobs
// (ordered by key type; disabled ones only with IncludeDisabled).
type CertificateListing struct {
	Spec CertificateSpec
	Jobs []ListedJob
}

// ListedJob is a job's state as a listing shows it, with its current
// certificate's validity (Current zero when none).
type ListedJob struct {
	KeyType         KeyType
	TargetRevision  string
	CurrentRevision string
	NextAt          time.Time
	Failures        int
	LastError       string
	LastErrorAt     time.Time
	Pending         bool // an order in flight
	LeaseOwner      string
	LeaseUntil      time.Time
	Disabled        bool
	// ARIStart and ARIEnd are the CA's renewal window as last seen
	// (RFC 9773), zero without one.
	ARIStart, ARIEnd time.Time
	// Deploy is whether the current certificate is written (Job.Deploy).
	Deploy  DeployState
	Current CurrentCertificate
	// ChainPEM is the current certificate's chain, with Chains only.
	ChainPEM []byte
}

// Statuses of a certificate in a listing (CertificateQuery.Status,
// CertificateListing.Status), from best to worst. A certificate's is the
// worst of its enabled jobs' (a key type without a job yet is pending).
const (
	ListingOK       = "ok"       // issued, valid, nothing failing or in flight
	ListingRenewing = "renewing" // valid, and a new certificate is being ordered (spec changed, order in flight, lease held)
	ListingPending  = "pending"  // never issued, nothing failed
	ListingFailing  = "failing"  // the last attempt failed, or the certificate is issued and not written
	ListingExpiring = "expiring" // the current certificate is within the warning window of its expiry
	ListingExpired  = "expired"  // the current certificate's not-after has passed
)

// ListingStatuses lists the statuses from best to worst.
var ListingStatuses = []string{ListingOK, ListingRenewing, ListingPending, ListingFailing, ListingExpiring, ListingExpired}

// ListingStatusRank is s's place in ListingStatuses (worse is higher), -1
// for an unknown one.
func ListingStatusRank(s string) int { return slices.Index(ListingStatuses, s) }

// ExpiryWindow is how long before its not-after a certificate is expiring:
// Fixed when positive, else a third of its lifetime, at most Max (the
// alerts' warning window, alert.Settings.Warning).
type ExpiryWindow struct {
	Fixed, Max time.Duration
}

// Of is the window of a certificate of lifetime life.
func (w ExpiryWindow) Of(life time.Duration) time.Duration {
	if w.Fixed > 0 {
		return w.Fixed
	}
	return min(life/3, w.Max)
}

// Status is the job's status at now (one of ListingStatuses): expired,
// else expiring (within w of its not-after), else failing, pending (never
// issued), renewing (its current certificate is of another revision than
// its spec's, an order is in flight or a lease held), or ok. The store's
// CertificateQuery.Status filter judges the same on the same columns.
func (j ListedJob) Status(now time.Time, w ExpiryWindow) string {
	cur := j.Current.IssuanceID != 0
	switch {
	case cur && !now.Before(j.Current.NotAfter):
		return ListingExpired
	case cur && j.Current.NotAfter.Sub(now) <= w.Of(j.Current.NotAfter.Sub(j.Current.NotBefore)):
		return ListingExpiring
	case j.Failures > 0 || (cur && j.Deploy.NotWritten()):
		return ListingFailing
	case !cur:
		return ListingPending
	case j.CurrentRevision != j.TargetRevision || j.Pending || (j.LeaseOwner != "" && now.Before(j.LeaseUntil)):
		return ListingRenewing
	}
	return ListingOK
}

// Status is the certificate's status at now: the worst of its enabled
// jobs', pending for a key type of its spec without a job yet, ok with no
// key type.
func (c CertificateListing) Status(now time.Time, w ExpiryWindow) string {
	worst := 0
	have := make(map[KeyType]bool, len(c.Jobs))
	for _, j := range c.Jobs {
		if j.Disabled {
			continue
		}
		have[j.KeyType] = true
		worst = max(worst, ListingStatusRank(j.Status(now, w)))
	}
	for _, kt := range c.Spec.KeyTypes {
		if !have[kt] {
			worst = max(worst, ListingStatusRank(ListingPending))
		}
	}
	return ListingStatuses[worst]
}

// Key returns the job's key.
func (j ListedJob) Key(spec string) JobKey { return JobKey{Spec: spec, KeyType: j.KeyType} }

// ListingPage is a page of CertificatePage: the certificates in name
// order, and Next, the cursor to go on from in the same direction (After
// forwards, Before backwards): "" when nothing more is there.
type ListingPage struct {
	Certificates []CertificateListing
	Next         string
}

// EachCertificate calls fn with every certificate q selects, a page at a
// time (q.Limit, from q.After on), and stops at the first error.
func EachCertificate(ctx context.Context, s NameIndex, q CertificateQuery, fn func(CertificateListing) error) error {
	if q.Limit <= 0 {
		q.Limit = MaxCertificatePage
	}
	q.Before = ""
	for {
		page, err := s.CertificatePage(ctx, q)
		if err != nil {
			return err
		}
		for _, c := range page.Certificates {
			if err := fn(c); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.After = page.Next
	}
}

// NormalizeSearch is a search text as CertificateQuery.Search compares
// it: lowercase, without spaces, a trailing dot or a leading "*.".
func NormalizeSearch(q string) string {
	q = strings.ToLower(strings.TrimSpace(q))
	q = strings.TrimSuffix(q, ".")
	q = strings.TrimPrefix(q, "*.")
	return q
}

// MaxSearchTerm is the longest search term kept (a DNS name's length).
const MaxSearchTerm = 253

// SearchTerms are the terms a certificate is found by (Search): for each
// of names (its name and identifiers' values), lowercased, the name
// itself and, for a DNS name, every run of whole labels at its start or
// its end, and every label; a wildcard's "*" label is not a term. An IP
// address is found by itself only. Sorted, without duplicates.
func SearchTerms(names ...string) []string {
	var out []string
	add := func(t string) {
		if t != "" && t != "*" && len(t) <= MaxSearchTerm {
			out = append(out, t)
		}
	}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		add(n)
		if _, err := netip.ParseAddr(n); err == nil {
			continue
		}
		labels := strings.Split(n, ".")
		if labels[0] == "*" {
			labels = labels[1:]
			add(strings.Join(labels, "."))
		}
		for i := range labels {
			add(labels[i])
			add(strings.Join(labels[:i+1], "."))
			add(strings.Join(labels[i:], "."))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ListingExtras is an optional interface of a NameIndex: what a listing
// shows of a page's rows beside their jobs (the newest attempts, places in
// a rate-limit queue, the class of the newest failure, the agents'
// reports), read for the whole page at once: a statement per kind of
// extra, whatever the number of rows (issue 13: a read per row made the
// pages of failing certificates the slowest, 265–300 ms p99 at load 9–15).
// Listings detect it with a type assertion and fall back to the per-row
// reads (JobStore.Attempts, RateLimitStore.BudgetWaits,
// AuditStore.Events, FleetStore.AgentReports) without it. Safe for
// concurrent use.
type ListingExtras interface {
	// PageExtras reads what q asks for, in one snapshot. Jobs and
	// certificates the store does not hold are absent from the maps, as
	// are those with nothing to show. EINVALID for more than
	// MaxCertificatePage entries in a field.
	PageExtras(ctx context.Context, q PageExtrasQuery) (PageExtras, error)
}

// PageExtrasQuery asks ListingExtras.PageExtras for the extras of a
// page's rows: each field lists the rows it is wanted for (nil: none).
type PageExtrasQuery struct {
	// Attempts are the jobs whose newest attempts are wanted, at most
	// AttemptsPer each (1 when 0), as JobStore.Attempts returns them.
	Attempts    []JobKey
	AttemptsPer int
	// Waits are the jobs whose waits for a rate-limit budget are wanted,
	// as RateLimitStore.BudgetWaits returns them for the job.
	Waits []JobKey
	// Reasons are the jobs whose newest failure's class is wanted: the
	// Reason of the newest EventOrderFailed event of the job's
	// certificate for its key type or for none (AuditStore).
	Reasons []JobKey
	// Reports are the certificates whose agents' reports are wanted, as
	// FleetStore.AgentReports returns them for the certificate.
	Reports []string
}

// PageExtras is what PageExtrasQuery asked for, by job or certificate.
type PageExtras struct {
	Attempts map[JobKey][]Attempt    // newest first
	Waits    map[JobKey][]BudgetWait // in the order BudgetWaits gives
	Reasons  map[JobKey]string       // only the jobs with such an event
	Reports  map[string][]AgentReport
}
