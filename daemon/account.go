package daemon

import (
	"context"
	"fmt"
	"slices"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
)

// Account administers one configured ACME account at its CA: key rollover
// (RFC 8555 §7.3.5), deactivation (§7.3.6) and registration, each recorded
// in the audit trail as done by the operator (RecordEvent). The ACME side
// is acmeissuer's; this adds the audit trail and the certificates that
// order with the account.
type Account struct {
	d    *Daemon
	name string
	iss  *acmeissuer.Issuer
}

// Account returns the administration of the configured account name, or an
// ENOTFOUND error listing the configured ones.
func (d *Daemon) Account(name string) (*Account, error) {
	if iss, ok := d.acme[name]; ok {
		return &Account{d: d, name: name, iss: iss}, nil
	}
	var names []string
	for n := range d.acme {
		names = append(names, n)
	}
	slices.Sort(names)
	return nil, certfleet.Errorf(certfleet.ENOTFOUND, "no account %q in %s (configured: %v; [ca] is %q)", name, d.Config.File, names, certfleet.DefaultAccount)
}

// RolloverKey replaces the account's key at its CA (acmeissuer's
// RolloverKey) and records it.
func (a *Account) RolloverKey(ctx context.Context) (certfleet.Account, error) {
	acct, err := a.iss.RolloverKey(ctx)
	if err != nil {
		return acct, err
	}
	a.d.RecordEvent(ctx, certfleet.Event{Kind: certfleet.EventAccount, Reason: "key_rollover",
		Detail: fmt.Sprintf("account %q (%s at %s): key rolled over", acct.Name, acct.URL, acct.CA)})
	return acct, nil
}

// Deactivate deactivates the account at its CA for good (acmeissuer's
// Deactivate) and records it once the store marks it deactivated, even
// when the CA's answer is an error.
func (a *Account) Deactivate(ctx context.Context) (certfleet.Account, error) {
	acct, err := a.iss.Deactivate(ctx)
	if acct.Deactivated() {
		a.d.RecordEvent(ctx, certfleet.Event{Kind: certfleet.EventAccount, Reason: "deactivated",
			Detail: fmt.Sprintf("account %q (%s at %s) deactivated", acct.Name, acct.URL, acct.CA)})
	}
	return acct, err
}

// Register registers the account at its CA (acmeissuer's Register: a new
// one, or one in place of a deactivated one; acmeissuer.ErrAccountExists
// for a valid registered one, left alone) and records it. Then call
// RetryFailed.
func (a *Account) Register(ctx context.Context) (certfleet.Account, error) {
	acct, err := a.iss.Register(ctx)
	if err != nil {
		return acct, err
	}
	a.d.RecordEvent(ctx, certfleet.Event{Kind: certfleet.EventAccount, Reason: "registered",
		Detail: fmt.Sprintf("account %q registered at %s as %s", acct.Name, acct.CA, acct.URL)})
	return acct, nil
}

// RetryFailed makes the failing certificates of the account due now:
// after Register, those that failed on a deactivated account would wait up
// to a day (a permanent error). It returns the ones made due, with the
// error that stopped it, if any.
func (a *Account) RetryFailed(ctx context.Context) ([]certfleet.JobKey, error) {
	var retried []certfleet.JobKey
	for _, name := range a.Users() {
		jobs, err := a.d.Store.Jobs(ctx, certfleet.JobFilter{Spec: name})
		if err != nil {
			return retried, err
		}
		for _, j := range jobs {
			if j.Failures > 0 {
				if err := a.d.Store.RetryNow(ctx, j.JobKey); err != nil {
					return retried, err
				}
				retried = append(retried, j.JobKey)
			}
		}
	}
	return retried, nil
}

// Users lists the certificates of the configuration in force that order
// with the account.
func (a *Account) Users() []string {
	var out []string
	for _, c := range a.d.CurrentConfig().Certificates {
		if c.Spec.AccountName() == a.name {
			out = append(out, c.Spec.Name)
		}
	}
	return out
}

// ACME returns the ACME issuer of the configured account name, unwrapped
// (the scheduler's may hide its Revoke behind the dns-01 preflight), or nil.
func (d *Daemon) ACME(name string) *acmeissuer.Issuer { return d.acme[name] }
