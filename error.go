package certfleet

import (
	"errors"
	"fmt"
	"time"
)

// Application error codes. They are stable strings: the HTTP API maps them to
// status codes in one table and the CLI prints them.
const (
	ECONFLICT     = "conflict"     // the action conflicts with current state (e.g. a lease held by another instance)
	EINTERNAL     = "internal"     // a bug or an unexpected failure; details go to the log only
	EINVALID      = "invalid"      // the input is wrong; the message says what and where
	ENOTFOUND     = "not_found"    // the entity does not exist
	EUNAUTHORIZED = "unauthorized" // the caller may not do this
	ERATELIMITED  = "rate_limited" // the CA (or our own budget) asked us to wait
	ELEASELOST    = "lease_lost"   // another instance owns the work now; stop without writing
	EUNAVAILABLE  = "unavailable"  // a dependency (CA, database, DNS) is unreachable; retry later
	// EDNSCONFIG: a DNS provider's settings are wrong (server, key name,
	// algorithm, secret, zone, the server's update policy, a clock TSIG
	// refuses); the message says which to fix. The audit files such
	// failures under it rather than "internal" (issue 15, finding 5).
	EDNSCONFIG = "dns_config"
)

// EQUOTA: a tenant's quota does not allow the request; the message says
// which quota and how to raise it (issue 12).
const EQUOTA = "quota_exceeded"

// Error is an application error: a code for programs and a message for people.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface. It is the message alone: errors are
// read by operators, and the code is for programs (ErrorCode).
func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for a nil
// error, and EINTERNAL for an error that carries no code.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic text for errors that carry no code (their details belong in the log).
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrNoRetry marks a failure that retrying cannot fix without a change by a
// person (a CA that refuses the names, a malformed spec). The scheduler still
// retries, but only at the backoff cap, so a fixed cause heals by itself
// without the CA being hammered meanwhile.
type ErrNoRetry struct{ Err error }

func (e ErrNoRetry) Error() string { return e.Err.Error() }
func (e ErrNoRetry) Unwrap() error { return e.Err }

// RetryAfterError carries a time before which the operation must not be tried
// again, as the CA said in a Retry-After header or a rateLimited problem
// (RFC 8555 §6.6: "clients SHOULD NOT retry before the time given").
type RetryAfterError struct {
	Err error
	At  time.Time
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.At.UTC().Format(time.RFC3339))
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the earliest retry time carried by err, if any.
func RetryAfter(err error) (time.Time, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.At, true
	}
	return time.Time{}, false
}

// ProblemTyper is implemented by errors that carry an ACME problem document
// (RFC 8555 §6.7), so packages that do not import the ACME client can still
// record and classify the CA's verdict.
type ProblemTyper interface {
	// ProblemType returns the problem's type URN, e.g.
	// "urn:ietf:params:acme:error:rateLimited".
	ProblemType() string
}

// ProblemType returns the ACME problem type carried by err, or "".
func ProblemType(err error) string {
	var pt ProblemTyper
	if errors.As(err, &pt) {
		return pt.ProblemType()
	}
	return ""
}
