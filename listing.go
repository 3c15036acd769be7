package certfleet

import (
	"context"
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
	// order from after q.After, at most q.Limit, each with its jobs and
	// their current certificates. EINVALID for a bad query.
	CertificatePage(ctx context.Context, q CertificateQuery) ([]CertificateListing, error)
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
	// Search, when set, selects the certificates whose name or one of
	// whose identifiers contains it (lowercase). It is a scan in name
	// order that stops once the page is full.
	Search string
	// Failing selects the certificates with an enabled job whose last
	// attempt failed.
	Failing bool
	// IncludeDisabled lists withdrawn certificates (and disabled jobs)
	// too.
	IncludeDisabled bool
	// Chains reads each current certificate's PEM chain too (for what
	// needs the leaf: its key ID).
	Chains bool
	// After is the name of the last certificate of the previous page; ""
	// starts at the beginning.
	After string
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

// Key returns the job's key.
func (j ListedJob) Key(spec string) JobKey { return JobKey{Spec: spec, KeyType: j.KeyType} }

// EachCertificate calls fn with every certificate q selects, a page at a
// time (q.Limit, from q.After on), and stops at the first error.
func EachCertificate(ctx context.Context, s NameIndex, q CertificateQuery, fn func(CertificateListing) error) error {
	if q.Limit <= 0 {
		q.Limit = MaxCertificatePage
	}
	for {
		page, err := s.CertificatePage(ctx, q)
		if err != nil {
			return err
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < q.Limit {
			return nil
		}
		q.After = page[len(page)-1].Spec.Name
	}
}
