package certfleet

import "errors"

// CAOutager is implemented by errors that say whether the CA itself was
// down: it could not be reached (connection refused, reset, timed out) or
// failed on its side (HTTP 5xx, serverInternal). Issuers mark their
// errors with it; IsCAOutage reads it.
type CAOutager interface {
	CAOutage() bool
}

// IsCAOutage reports whether err (or an error it wraps) says the CA was
// down: an outage of the CA, which retrying this certificate alone cannot
// fix and waiting for the CA will. A scheduler pauses the CA's work
// instead of backing each certificate off (manager's circuit breaker).
func IsCAOutage(err error) bool {
	var o CAOutager
	return errors.As(err, &o) && o.CAOutage()
}

// CANamer is an optional interface of an Issuer: CA names the CA it
// orders from (for ACME, its directory URL), so the accounts of one CA
// share one view of whether it is down.
type CANamer interface {
	CA() string
}
