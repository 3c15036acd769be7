package acmeissuer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/mholt/acmez/v3/acme"
)

// account returns the ACME account, loading it from the store or creating
// it at the CA (RFC 8555 §7.3) on first use. Concurrent callers wait for
// the first; an instance that loses the race to store a new account uses
// the winner's (the store returns it) and abandons its own at the CA.
//
// With a store, the account is read again at every call (one row), so that
// a key rollover or a deactivation made by another process (certfleet
// account ...) or instance takes effect at the next order: a deactivated
// account is refused with a permanent error telling the operator what to
// do, never silently registered anew, and a rollover left pending by a
// crash is resolved by asking the CA which key it knows.
func (i *Issuer) account(ctx context.Context) (acme.Account, error) {
	i.acctMu.Lock()
	defer i.acctMu.Unlock()
	if i.cfg.Accounts == nil {
		if i.acct != nil {
			return *i.acct, nil
		}
		a, err := i.newAccount(ctx)
		if err != nil {
			return acme.Account{}, err
		}
		i.acct = &a
		return a, nil
	}
	stored, err := i.cfg.Accounts.Account(ctx, i.cfg.DirectoryURL, i.name)
	switch {
	case err == nil:
		return i.useStored(ctx, stored)
	case certfleet.ErrorCode(err) != certfleet.ENOTFOUND:
		return acme.Account{}, fmt.Errorf("load account %q: %w", i.name, err)
	}

	a, err := i.newAccount(ctx)
	if err != nil {
		return acme.Account{}, err
	}
	keyPEM, err := certfleet.MarshalPrivateKey(a.PrivateKey)
	if err != nil {
		return acme.Account{}, err
	}
	stored, err = i.cfg.Accounts.CreateAccount(ctx, certfleet.Account{
		CA: i.cfg.DirectoryURL, Name: i.name, Contact: a.Contact,
		KeyPEM: keyPEM, URL: a.Location, CreatedAt: i.now(),
	})
	if err != nil {
		return acme.Account{}, fmt.Errorf("store account %s: %w", a.Location, err)
	}
	if stored.URL != a.Location {
		i.logger.Info("another instance created the account first; using its account",
			"account", stored.URL, "abandoned", a.Location)
		return i.useStored(ctx, stored)
	}
	i.acct, i.acctKeyPEM = &a, keyPEM
	return a, nil
}

// useStored turns the stored account into the one to use, reusing the
// parsed key while it is unchanged. Called with acctMu held.
func (i *Issuer) useStored(ctx context.Context, stored certfleet.Account) (acme.Account, error) {
	if stored.Deactivated() {
		i.acct, i.acctKeyPEM = nil, nil
		return acme.Account{}, certfleet.ErrNoRetry{Err: deactivatedError(stored)}
	}
	if stored.PendingKeyPEM != nil {
		var err error
		if stored, err = i.resolveRollover(ctx, stored); err != nil {
			return acme.Account{}, err
		}
	}
	if i.acct != nil && i.acct.Location == stored.URL && bytes.Equal(i.acctKeyPEM, stored.KeyPEM) {
		return *i.acct, nil
	}
	a, err := fromStored(stored)
	if err != nil {
		return acme.Account{}, err
	}
	i.acct, i.acctKeyPEM = &a, stored.KeyPEM
	return a, nil
}

// deactivatedError explains why a deactivated account cannot be used and
// what the operator can do.
func deactivatedError(a certfleet.Account) error {
	return certfleet.Errorf(certfleet.EINVALID,
		"ACME account %q (%s at %s) was deactivated on %s and certfleet will not use it or register a new one by itself: "+
			"point the certificates that use it at another account (account = \"NAME\" in their [[certificate]]), "+
			"or register a new account under this name with `certfleet account register %s`",
		a.Name, a.URL, a.CA, a.DeactivatedAt.UTC().Format(time.RFC3339), a.Name)
}

// newAccount creates an account at the CA with a new P-256 key.
func (i *Issuer) newAccount(ctx context.Context) (acme.Account, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return acme.Account{}, fmt.Errorf("generate account key: %w", err)
	}
	a := acme.Account{
		Contact:              contactURLs(i.cfg.Contact),
		TermsOfServiceAgreed: true,
		PrivateKey:           key,
	}
	if i.cfg.EAB != nil {
		// SetExternalAccountBinding needs the directory (the newAccount
		// URL is signed into the binding).
		if _, err := i.directory(ctx); err != nil {
			return acme.Account{}, err
		}
		if err := a.SetExternalAccountBinding(ctx, i.client, acme.EAB{KeyID: i.cfg.EAB.KeyID, MACKey: i.cfg.EAB.HMAC}); err != nil {
			// The error may quote the decoder's complaint, never the key.
			return acme.Account{}, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID,
				"external account binding %q: %v", i.cfg.EAB.KeyID, err)}
		}
	}
	_, err = i.call(ctx, func(ctx context.Context) error {
		var err error
		a, err = i.client.NewAccount(ctx, a)
		return err
	})
	if err != nil {
		return acme.Account{}, fmt.Errorf("create account %q at %s: %w", i.name, i.cfg.DirectoryURL, err)
	}
	if a.Location == "" {
		return acme.Account{}, fmt.Errorf("create account %q at %s: the CA sent no account URL", i.name, i.cfg.DirectoryURL)
	}
	i.logger.Info("account created", "account", a.Location, "name", i.name)
	return a, nil
}

// fromStored turns a stored account into an acmez one.
func fromStored(s certfleet.Account) (acme.Account, error) {
	key, err := certfleet.ParsePrivateKey(s.KeyPEM)
	if err != nil {
		return acme.Account{}, fmt.Errorf("account %s: key: %w", s.URL, err)
	}
	return acme.Account{
		Status:     acme.StatusValid,
		Contact:    s.Contact,
		Location:   s.URL,
		PrivateKey: key,
	}, nil
}

// contactURLs adds "mailto:" to bare e-mail addresses (RFC 8555 §7.3).
func contactURLs(contact []string) []string {
	var out []string
	for _, c := range contact {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
		case strings.Contains(c, ":"):
			out = append(out, c)
		default:
			out = append(out, "mailto:"+c)
		}
	}
	return out
}

// replaceAccount creates a new account at the CA in place of the current
// one, which the CA said does not exist, and stores it in place of the old
// one if the store can (certfleet.AccountReplacer). Of instances racing to
// do so, the first one's account is kept and the others use it.
func (i *Issuer) replaceAccount(ctx context.Context) error {
	i.acctMu.Lock()
	defer i.acctMu.Unlock()
	stale := ""
	if i.acct != nil {
		stale = i.acct.Location
	}
	if i.cfg.Accounts != nil {
		// Never replace an account the operator deactivated, nor one
		// whose state cannot be read: ReplaceAccount would revive it.
		cur, err := i.cfg.Accounts.Account(ctx, i.cfg.DirectoryURL, i.name)
		switch {
		case err == nil && cur.Deactivated():
			i.acct, i.acctKeyPEM = nil, nil
			return deactivatedError(cur)
		case err != nil && certfleet.ErrorCode(err) != certfleet.ENOTFOUND:
			return fmt.Errorf("check account %q before replacing it: %w", i.name, err)
		}
	}
	a, err := i.newAccount(ctx)
	if err != nil {
		return err
	}
	if rep, ok := i.cfg.Accounts.(certfleet.AccountReplacer); ok {
		keyPEM, err := certfleet.MarshalPrivateKey(a.PrivateKey)
		if err != nil {
			return err
		}
		// Only a valid account is replaced: one an operator deactivated
		// since the check above stays deactivated.
		stored, err := rep.ReplaceAccount(ctx, certfleet.Account{URL: stale, Status: certfleet.AccountValid}, certfleet.Account{
			CA: i.cfg.DirectoryURL, Name: i.name, Contact: a.Contact,
			KeyPEM: keyPEM, URL: a.Location, CreatedAt: i.now(),
		})
		if err != nil {
			return fmt.Errorf("store new account %s: %w", a.Location, err)
		}
		if stored.Deactivated() {
			i.logger.Warn("the account was deactivated while a replacement was registered; the replacement is not used", "unused_account", a.Location, "name", i.name)
			i.acct, i.acctKeyPEM = nil, nil
			return deactivatedError(stored)
		}
		if stored.URL != a.Location {
			if a, err = fromStored(stored); err != nil {
				return err
			}
		}
	} else if i.cfg.Accounts != nil {
		i.logger.Warn("the store cannot replace accounts; the new account is used until certfleet restarts", "account", a.Location)
	}
	i.logger.Warn("the CA no longer knows the stored account; using a new one", "stale_account", stale, "account", a.Location, "name", i.name)
	i.acct, i.acctKeyPEM = &a, nil
	return nil
}
