package acmeissuer

import (
	"context"
	"fmt"
	"strings"

	"github.com/certfleet/certfleet"
)

var _ certfleet.PersistIdentifier = (*Issuer)(nil)

// PersistIdentity implements certfleet.PersistIdentifier: the account's
// URL (registering the account when it has none yet) and the CA's issuer
// domain names, read from its directory's caaIdentities (RFC 8555
// §7.1.1). draft-ietf-acme-dns-persist §3.2 (draft -02) adds a directory
// field of their own, issuerDomainNames, every value of which is also in
// caaIdentities; Pebble v2.10.1 offers exactly its caaIdentities in each
// dns-persist-01 challenge.
func (i *Issuer) PersistIdentity(ctx context.Context) (certfleet.PersistIdentity, error) {
	dir, err := i.directory(ctx)
	if err != nil {
		return certfleet.PersistIdentity{}, err
	}
	var names []string
	if dir.Meta != nil {
		for _, n := range dir.Meta.CAAIdentities {
			names = append(names, strings.TrimSuffix(strings.ToLower(n), "."))
		}
	}
	if len(names) == 0 {
		return certfleet.PersistIdentity{}, certfleet.Errorf(certfleet.EINVALID,
			"the CA %s names no issuer domain names in its directory (caaIdentities), so no dns-persist-01 record can be written for it", i.cfg.DirectoryURL)
	}
	acct, err := i.account(ctx)
	if err != nil {
		return certfleet.PersistIdentity{}, fmt.Errorf("account: %w", err)
	}
	return certfleet.PersistIdentity{AccountURL: acct.Location, IssuerDomainNames: names}, nil
}
