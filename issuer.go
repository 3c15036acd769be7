package certfleet

import (
	"context"
	"crypto"
	"crypto/x509"
	"time"
)

// IssueRequest asks an Issuer for one certificate.
type IssueRequest struct {
	// Spec gives the identifiers, challenge, profile and account.
	Spec CertificateSpec
	// KeyType and Key: the certificate's key; the CSR is made from it.
	KeyType KeyType
	Key     crypto.Signer
	// CSR, when Key is nil, is the host's own certificate request (CSR
	// mode, see CertificateSpec.CSR): the order is finalized with it and
	// the certificate must be for its public key.
	CSR *x509.CertificateRequest
	// Replaces is the certificate this one renews; its ARI identifier goes
	// in the order's "replaces" field (RFC 9773 §5) when the CA offers ARI.
	Replaces *x509.Certificate
	// ResumeOrderURL, when set, is an order placed earlier for the same key
	// (before a crash or lost lease): the issuer continues it if it is still
	// usable (pending, ready, processing or valid) and places a new order
	// only if it is invalid or gone.
	ResumeOrderURL string
	// Placed, when set, is the mark of a new order whose placing was
	// interrupted before its URL was saved (Job.Placing, and no
	// ResumeOrderURL): the issuer looks for that order among the
	// account's orders (RFC 8555 §7.1.2.1) and continues it instead of
	// placing a second one, if it is still pending or ready. Orders in
	// NotOrders (other jobs' orders for the same identifiers) are never
	// taken for it.
	Placed    *OrderPlacing
	NotOrders []string
	// OnPlacing, if set, is called just before a new order is placed
	// (after BeforeNewOrder), so the caller can persist the mark; an
	// error ends the issuance before the CA is asked. It is called again
	// with a zero mark (to clear it) when the CA certainly created no
	// order (it refused the request, or the connection was refused).
	// certfleet.JobStore.MarkPlacing clears with a zero mark.
	OnPlacing func(ctx context.Context, p OrderPlacing) error
	// OnOrder is called with the URL of a newly placed order (or of the
	// order found for Placed) before any challenge is answered, so the caller can persist it; an error aborts
	// the issuance.
	OnOrder func(ctx context.Context, orderURL string) error
	// BeforeNewOrder, if set, is called just before a new order is placed
	// (never when ResumeOrderURL is continued), with whether the order
	// carries "replaces"; called again with false when the CA refused
	// "replaces" and the order is placed without it. An error (a
	// *DeferError when a rate-limit budget is exhausted) ends the issuance
	// before the CA is asked, and is passed through.
	BeforeNewOrder func(ctx context.Context, replaces bool) error
}

// IssueResult is what the CA issued.
type IssueResult struct {
	ChainPEM   []byte // leaf first
	OrderURL   string
	CertURL    string
	CA         string
	AccountURL string
}

// Issuer obtains certificates from one ACME CA with one account. Safe for
// concurrent use. Errors from the CA keep the ACME problem reachable with
// errors.As; rate limits and Retry-After come as *RetryAfterError, failures
// that retrying cannot fix as ErrNoRetry.
type Issuer interface {
	Issue(ctx context.Context, req IssueRequest) (IssueResult, error)
}

// RenewalInfo is a CA's suggested renewal window (RFC 9773 §4.2).
type RenewalInfo struct {
	Start, End time.Time
	// RetryAfter is when to ask again ("clients SHOULD query the
	// renewalInfo URL again after the Retry-After period has passed").
	RetryAfter     time.Time
	ExplanationURL string
}

// RenewalInfoer is an optional interface of an Issuer whose CA offers ARI.
// RenewalInfo returns an ENOTFOUND error when the CA has no renewalInfo
// endpoint.
type RenewalInfoer interface {
	RenewalInfo(ctx context.Context, leaf *x509.Certificate) (RenewalInfo, error)
}
