package acmeissuer

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/certfleet/certfleet"
	"github.com/mholt/acmez/v3/acme"
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
			return certfleet.Errorf(certfleet.ENOTFOUND, "revoke serial %s: the CA %s does not know the certificate", certfleet.SerialString(cert.SerialNumber), i.cfg.DirectoryURL)
		}
		return fmt.Errorf("revoke serial %s at %s: %w", certfleet.SerialString(cert.SerialNumber), i.cfg.DirectoryURL, finish(err))
	}
	return nil
}

// RevokeWithKey asks the CA to revoke cert with a request signed by the
// certificate's own key instead of the account key (RFC 8555 §7.6: "the
// JWS ... MUST be signed with ... the private key corresponding to the
// public key in the certificate"). No account is involved, so it works for
// a certificate ordered by another or a deactivated account, and it proves
// to the CA that the key is in other hands than the subscriber's alone,
// which CAs such as Let's Encrypt take as the signal to block the key
// (ours: used by certfleet compromise with reason keyCompromise). Already
// revoked counts as revoked.
func (i *Issuer) RevokeWithKey(ctx context.Context, cert *x509.Certificate, key crypto.Signer, reason int) error {
	if cert == nil || key == nil {
		return certfleet.Errorf(certfleet.EINVALID, "revoke: no certificate or key")
	}
	rec, err := i.call(ctx, func(ctx context.Context) error {
		return i.client.RevokeCertificate(ctx, acme.Account{}, cert, key, reason)
	})
	if err != nil {
		if certfleet.ProblemType(finish(err)) == "urn:ietf:params:acme:error:alreadyRevoked" {
			return nil
		}
		if status, _ := rec.get(); status == http.StatusNotFound {
			return certfleet.Errorf(certfleet.ENOTFOUND, "revoke serial %s: the CA %s does not know the certificate", certfleet.SerialString(cert.SerialNumber), i.cfg.DirectoryURL)
		}
		return fmt.Errorf("revoke serial %s at %s (signed with the certificate key): %w", certfleet.SerialString(cert.SerialNumber), i.cfg.DirectoryURL, finish(err))
	}
	return nil
}
