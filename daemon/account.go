package daemon

import (
	"slices"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
)

// AccountIssuer returns the ACME issuer of the configured account name, or
// an ENOTFOUND error listing the configured ones.
func (d *Daemon) AccountIssuer(name string) (*acmeissuer.Issuer, error) {
	if iss, ok := d.acme[name]; ok {
		return iss, nil
	}
	var names []string
	for n := range d.acme {
		names = append(names, n)
	}
	slices.Sort(names)
	return nil, certfleet.Errorf(certfleet.ENOTFOUND, "no account %q in %s (configured: %v; [ca] is %q)", name, d.Config.File, names, certfleet.DefaultAccount)
}

// AccountUsers lists the certificates of the configuration in force that
// order with account.
func (d *Daemon) AccountUsers(account string) []string {
	var out []string
	for _, c := range d.CurrentConfig().Certificates {
		if c.Spec.AccountName() == account {
			out = append(out, c.Spec.Name)
		}
	}
	return out
}

// ACME returns the ACME issuer of the configured account name, unwrapped
// (the scheduler's may hide its Revoke behind the dns-01 preflight), or nil.
func (d *Daemon) ACME(name string) *acmeissuer.Issuer { return d.acme[name] }
