package acmeissuer

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/certfleet/certfleet"
)

var _ certfleet.Revoker = (*Issuer)(nil)

// Revoke asks the CA to revoke cert (RFC 8555 §7.6), signed with the
// account key ("Revocation requests ... can be signed with either an
// account key pair or the key pair in the certificate"): the account that
// ordered a certificate is authorized to revoke it, and a destroyed
// certificate key is then no obstacle. A certificate the CA reports as
// already revoked ("alreadyRevoked", §7.6) counts as revoked.
func (i *Issuer) Revoke(ctx context.Context, cert *x509.Certificate, reason int) error {
	if cert == nil {
		return certfleet.Errorf(certfleet.EINVALID, "revoke: no certificate")
	}
	acct, err := i.account(ctx)
	if err != nil {
		return err
	}
	rec, err := i.call(ctx, func(ctx context.Context) error {
		return i.client.RevokeCertificate(ctx, acct, cert, nil, reason)
	})
	if err != nil {
		if certfleet.ProblemType(finish(err)) == "urn:ietf:params:acme:error:alreadyRevoked" {
			return nil
		}
		if status, _ := rec.get(); status == http.StatusNotFound {
			return certfleet.Errorf(certfleet.ENOTFOUND, "revoke serial %s: the CA %s does not know the certificate", cert.SerialNumber.Text(16), i.cfg.DirectoryURL)
		}
		return fmt.Errorf("revoke serial %s at %s: %w", cert.SerialNumber.Text(16), i.cfg.DirectoryURL, finish(err))
	}
	return nil
}
