package certfleet

import (
	"context"
	"crypto/x509"
)

// Revocation reasons (RFC 5280 §5.3.1) an API caller may give.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
)

// Revoker is an optional interface of an Issuer: Revoke asks the CA to
// revoke cert (RFC 8555 §7.6), signed with the account key. Revoking a
// certificate the CA already revoked is not an error.
type Revoker interface {
	Revoke(ctx context.Context, cert *x509.Certificate, reason int) error
}
