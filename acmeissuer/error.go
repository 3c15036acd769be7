package acmeissuer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/mholt/acmez/v3/acme"
)

// caError is an error from the CA (or from reaching it), classified. It
// keeps the original error reachable, and with it the acme.Problem, and
// adds the application code (certfleet.ErrorCode) and the problem type
// (certfleet.ProblemType).
type caError struct {
	err     error            // from acmez; keeps acme.Problem reachable
	code    *certfleet.Error // nil when the failure has no better code than EINTERNAL
	problem string           // the problem type URN, "" for none
	retryAt time.Time        // when the CA said to come back, zero for never said
	noRetry bool             // retrying cannot help without a person's change
}

func (e *caError) Error() string       { return e.err.Error() }
func (e *caError) ProblemType() string { return e.problem }

// CAOutage reports whether the CA was unreachable or failed on its side
// (EUNAVAILABLE: connection failures, 5xx, serverInternal).
func (e *caError) CAOutage() bool { return e.code != nil && e.code.Code == certfleet.EUNAVAILABLE }
func (e *caError) Unwrap() []error {
	if e.code == nil {
		return []error{e.err}
	}
	return []error{e.err, e.code}
}

var (
	_ certfleet.ProblemTyper = (*caError)(nil)
	_ certfleet.CAOutager    = (*caError)(nil)
)

// Problem types acmez has no constant for.
const (
	problemInvalidProfile = acme.ProblemTypeNamespace + "invalidProfile" // draft-aaron-acme-profiles
)

// classify turns an error from an acmez call into a *caError, using what
// the transport saw (rec: the last response's status and Retry-After).
// Context cancellation passes through unchanged.
//
// The table, ours: rateLimited waits for Retry-After (RFC 8555 §6.6);
// problems about the names, the CSR, the account or the CA's policy cannot
// heal by retrying and are marked ErrNoRetry; 5xx answers and connection
// failures are EUNAVAILABLE. badNonce never gets here: acmez retries it.
func classify(err error, rec *recorder, dir string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *caError
	if errors.As(err, &ce) {
		return err // already classified
	}
	status, retryAt := rec.get()
	if status < 400 {
		retryAt = time.Time{} // a Retry-After on a success is a poll hint, not a verdict
	}
	e := &caError{err: err, retryAt: retryAt}
	var p acme.Problem
	if errors.As(err, &p) {
		e.problem = p.Type
		if p.Status != 0 {
			status = p.Status
		}
		switch p.Type {
		case acme.ProblemTypeRateLimited:
			e.code = certfleet.Errorf(certfleet.ERATELIMITED, "the CA %s is rate limiting: %s", dir, p.Detail)
			return e
		case acme.ProblemTypeUnauthorized, acme.ProblemTypeCAA, acme.ProblemTypeExternalAccountRequired,
			acme.ProblemTypeAccountDoesNotExist, acme.ProblemTypeUserActionRequired:
			e.code = certfleet.Errorf(certfleet.EUNAUTHORIZED, "the CA %s refused: %s", dir, p.Detail)
			e.noRetry = true
			return e
		case acme.ProblemTypeRejectedIdentifier, acme.ProblemTypeUnsupportedIdentifier, acme.ProblemTypeBadCSR,
			acme.ProblemTypeInvalidContact, acme.ProblemTypeUnsupportedContact, problemInvalidProfile:
			e.code = certfleet.Errorf(certfleet.EINVALID, "the CA %s refused: %s", dir, p.Detail)
			e.noRetry = true
			return e
		case acme.ProblemTypeServerInternal:
			e.code = certfleet.Errorf(certfleet.EUNAVAILABLE, "the CA %s failed: %s", dir, p.Detail)
			return e
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		e.code = certfleet.Errorf(certfleet.ERATELIMITED, "the CA %s is rate limiting (HTTP 429)", dir)
	case status >= 500:
		e.code = certfleet.Errorf(certfleet.EUNAVAILABLE, "the CA %s is unavailable (HTTP %d)", dir, status)
	case isConnError(err):
		e.code = certfleet.Errorf(certfleet.EUNAVAILABLE, "the CA %s is unreachable", dir)
	}
	return e
}

func isConnError(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}

// finish marks err for the scheduler at the Issuer's boundary, so the
// marker wraps the whole message: ErrNoRetry for permanent failures,
// *certfleet.RetryAfterError when the CA named a time.
func finish(err error) error {
	if err == nil {
		return nil
	}
	var ce *caError
	if !errors.As(err, &ce) {
		return err
	}
	switch {
	case !ce.retryAt.IsZero():
		return &certfleet.RetryAfterError{Err: err, At: ce.retryAt}
	case ce.noRetry:
		return certfleet.ErrNoRetry{Err: err}
	}
	return err
}

// authzError is a failed authorization: its problem (from the challenge's
// "error" field, RFC 8555 §7.1.4) with the identifier and challenge type.
type authzError struct {
	identifier string
	challenge  string
	status     string
	problem    acme.Problem
}

func (e *authzError) Error() string {
	detail := e.problem.Detail
	if detail == "" && e.problem.Type != "" {
		detail = e.problem.Type
	}
	if detail == "" {
		detail = "no problem document"
	}
	return fmt.Sprintf("authorization for %q (%s) %s: %s", e.identifier, e.challenge, e.status, detail)
}

// FailedIdentifier implements certfleet.ValidationFailure: the identifier
// of an authorization the CA found invalid (a failed validation, which CAs
// count against a per-name limit); "" for other states (expired,
// deactivated), which are no failed validation.
func (e *authzError) FailedIdentifier() string {
	if e.status != acme.StatusInvalid {
		return ""
	}
	return e.identifier
}

func (e *authzError) Unwrap() error {
	if e.problem.Type == "" {
		return nil
	}
	return e.problem
}

// recorderKey is the context key of the *recorder of one acmez call.
type recorderKey struct{}

// recorder keeps what the transport saw of the last response of one acmez
// call: acmez returns neither the status of a non-problem error nor the
// Retry-After of any response.
type recorder struct {
	mu         sync.Mutex // guards status, retryAfter, body, links
	status     int
	retryAfter time.Time
	// keep asks for the body and Link header fields of the response
	// (the orders list, which acmez cannot decode; set before the call).
	keep  bool
	body  []byte
	links []string
}

func (r *recorder) get() (int, time.Time) {
	if r == nil {
		return 0, time.Time{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.retryAfter
}

// transport records each response's status and Retry-After in the
// recorder of the request's context, if any.
type transport struct {
	base http.RoundTripper
	now  func() time.Time
}

// maxKeptBody bounds a response body kept by a recorder: an orders page of
// a CA that ignores paging would be a few hundred bytes per order.
const maxKeptBody = 4 << 20

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if rec, ok := req.Context().Value(recorderKey{}).(*recorder); ok && resp != nil {
		at := parseRetryAfter(resp.Header.Get("Retry-After"), t.now())
		rec.mu.Lock()
		rec.status, rec.retryAfter = resp.StatusCode, at
		if rec.keep && resp.Body != nil {
			// Bounded: an orders page is a list of URLs.
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxKeptBody))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(b))
			if rerr != nil {
				b = nil
			}
			rec.body, rec.links = b, resp.Header.Values("Link")
		}
		rec.mu.Unlock()
	}
	return resp, err
}

// parseRetryAfter reads a Retry-After header (RFC 9110 §10.2.3: seconds or
// an HTTP date); zero for none or garbage.
func parseRetryAfter(h string, now time.Time) time.Time {
	if h == "" {
		return time.Time{}
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return now.Add(time.Duration(s) * time.Second)
	}
	if t, err := http.ParseTime(h); err == nil {
		return t
	}
	return time.Time{}
}
