package acmeissuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/mholt/acmez/v3/acme"
)

// admin returns the store's certfleet.AccountAdmin, or an error saying the
// operation needs one.
func (i *Issuer) admin(what string) (certfleet.AccountAdmin, error) {
	adm, ok := i.cfg.Accounts.(certfleet.AccountAdmin)
	if !ok {
		return nil, certfleet.Errorf(certfleet.EINVALID, "%s of account %q: the account store cannot manage accounts", what, i.name)
	}
	return adm, nil
}

// storedAccount reads the account of this Issuer; an account never
// registered is ENOTFOUND with a message saying so.
func (i *Issuer) storedAccount(ctx context.Context, what string) (certfleet.Account, error) {
	a, err := i.cfg.Accounts.Account(ctx, i.cfg.DirectoryURL, i.name)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
		return a, certfleet.Errorf(certfleet.ENOTFOUND,
			"%s: account %q has not been registered at %s yet (certfleet registers it at its first order, or run `certfleet account register %s`)",
			what, i.name, i.cfg.DirectoryURL, i.name)
	}
	if err != nil {
		return a, fmt.Errorf("%s: load account %q: %w", what, i.name, err)
	}
	return a, nil
}

// RolloverKey replaces the account's key with a new P-256 key (RFC 8555
// §7.3.5 "Account Key Rollover": "the client sends a request to the
// server containing signatures by both the old and new keys"), and returns
// the account as stored afterwards.
//
// Crash safety (ours): the new key is generated and stored, sealed, as the
// account's pending key before the CA is asked. If the process dies after
// the CA accepted the change but before the store recorded it, the pending
// key is still there; the next use of the account (any instance) asks the
// CA which of the two keys it knows (newAccount with onlyReturnExisting,
// §7.3.1, signed with the pending key) and records the answer. So the key
// the CA knows is never lost, and the store never holds a key the CA did
// not accept as the account key. Orders in flight elsewhere with the old
// key fail once and are retried with the new one.
func (i *Issuer) RolloverKey(ctx context.Context) (certfleet.Account, error) {
	adm, err := i.admin("key rollover")
	if err != nil {
		return certfleet.Account{}, err
	}
	i.acctMu.Lock()
	defer i.acctMu.Unlock()
	stored, err := i.storedAccount(ctx, "key rollover")
	if err != nil {
		return stored, err
	}
	if stored.Deactivated() {
		return stored, deactivatedError(stored)
	}
	// A rollover left pending (a crash) is settled first.
	acct, err := i.useStored(ctx, stored)
	if err != nil {
		return stored, err
	}
	if _, err := i.directory(ctx); err != nil { // AccountKeyRollover needs keyChange
		return stored, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return stored, fmt.Errorf("generate account key: %w", err)
	}
	keyPEM, err := certfleet.MarshalPrivateKey(key)
	if err != nil {
		return stored, err
	}
	if err := adm.BeginKeyRollover(ctx, i.cfg.DirectoryURL, i.name, keyPEM); err != nil {
		return stored, err
	}
	_, err = i.call(ctx, func(ctx context.Context) error {
		_, err := i.client.AccountKeyRollover(ctx, acct, key)
		return err
	})
	// The CA's answer decides; the store write must happen even if ctx
	// ends now.
	wctx := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		return i.finishRollover(wctx, adm, keyPEM, true)
	case certfleet.ProblemType(err) != "":
		// The CA answered with a problem: the old key stays.
		if _, ferr := adm.FinishKeyRollover(wctx, i.cfg.DirectoryURL, i.name, keyPEM, false, i.now()); ferr != nil {
			i.logger.Error("drop the refused pending account key", certfleet.LogError, ferr)
		}
		return stored, fmt.Errorf("key rollover of account %q at %s: %w", i.name, i.cfg.DirectoryURL, finish(err))
	}
	// No answer (connection lost, timeout): ask the CA which key it knows.
	cur, err2 := i.cfg.Accounts.Account(wctx, i.cfg.DirectoryURL, i.name)
	if err2 == nil && cur.PendingKeyPEM != nil {
		if cur, err2 = i.resolveRollover(wctx, cur); err2 == nil {
			if string(cur.KeyPEM) == string(keyPEM) {
				return cur, nil
			}
			return cur, fmt.Errorf("key rollover of account %q at %s: the CA did not take the new key (the old one stays): %w", i.name, i.cfg.DirectoryURL, finish(err))
		}
	}
	return stored, fmt.Errorf("key rollover of account %q at %s: %w; whether the CA took the new key is unknown: it is kept as pending, and certfleet asks the CA at the account's next use", i.name, i.cfg.DirectoryURL, finish(err))
}

// finishRollover records the CA's acceptance of keyPEM. The store records
// it even if another process settled the pending key meanwhile (it asked
// the CA too early and dropped it), and never promotes a different pending
// key (a later rollover's) in its place.
func (i *Issuer) finishRollover(ctx context.Context, adm certfleet.AccountAdmin, keyPEM []byte, accepted bool) (certfleet.Account, error) {
	out, err := adm.FinishKeyRollover(ctx, i.cfg.DirectoryURL, i.name, keyPEM, accepted, i.now())
	if err != nil {
		return out, fmt.Errorf("the CA %s accepted the new key of account %q but storing it failed (it stays pending and is settled at the next use): %w", i.cfg.DirectoryURL, i.name, err)
	}
	i.acct, i.acctKeyPEM = nil, nil
	i.logger.Info("account key rolled over", "account", out.URL, "name", i.name)
	return out, nil
}

// resolveRollover settles a rollover whose outcome the store does not know
// (its pending key): it asks the CA for the account of the pending key
// (RFC 8555 §7.3.1: "If the client wishes to find the URL for an existing
// account ... it can do so by sending a POST request to the newAccount URL
// with a JWS whose payload has an 'onlyReturnExisting' field set to
// 'true'"). The CA knowing it as this account means the rollover
// happened; accountDoesNotExist means it did not. Any other answer leaves
// it pending. Called with acctMu held.
func (i *Issuer) resolveRollover(ctx context.Context, stored certfleet.Account) (certfleet.Account, error) {
	adm, err := i.admin("key rollover")
	if err != nil {
		return stored, err
	}
	key, err := certfleet.ParsePrivateKey(stored.PendingKeyPEM)
	if err != nil {
		return stored, fmt.Errorf("account %q: pending key: %w", i.name, err)
	}
	var found acme.Account
	_, err = i.call(ctx, func(ctx context.Context) error {
		var err error
		found, err = i.client.GetAccount(ctx, acme.Account{PrivateKey: key})
		return err
	})
	switch {
	case err == nil && found.Location == stored.URL:
		i.logger.Warn("a key rollover interrupted earlier had been accepted by the CA; recording the new key", "account", stored.URL, "name", i.name)
		return adm.FinishKeyRollover(ctx, i.cfg.DirectoryURL, i.name, stored.PendingKeyPEM, true, i.now())
	case err == nil:
		return stored, certfleet.Errorf(certfleet.EINTERNAL, "account %q: the CA knows the pending key as another account (%s, not %s); left pending for an operator to look at",
			i.name, found.Location, stored.URL)
	case certfleet.ProblemType(err) == acme.ProblemTypeAccountDoesNotExist:
		i.logger.Warn("a key rollover interrupted earlier had not reached the CA; keeping the old key", "account", stored.URL, "name", i.name)
		return adm.FinishKeyRollover(ctx, i.cfg.DirectoryURL, i.name, stored.PendingKeyPEM, false, i.now())
	}
	return stored, fmt.Errorf("account %q has a key rollover of unknown outcome and the CA could not be asked which key it knows: %w", i.name, finish(err))
}

// Deactivate deactivates the account (RFC 8555 §7.3.6: "A client can
// deactivate an account by posting a signed update to the account URL with
// a status field of 'deactivated'"). The store marks it deactivated first,
// so that no instance orders with it while the CA is asked; certificates
// using it then fail with an error saying what to do. Deactivating an
// account the store already marks deactivated asks the CA again (a
// previous attempt may not have reached it); the CA refusing the account
// as unauthorized then counts as done. It returns the stored account.
func (i *Issuer) Deactivate(ctx context.Context) (certfleet.Account, error) {
	adm, err := i.admin("deactivation")
	if err != nil {
		return certfleet.Account{}, err
	}
	i.acctMu.Lock()
	defer i.acctMu.Unlock()
	stored, err := i.storedAccount(ctx, "deactivate")
	if err != nil {
		return stored, err
	}
	again := stored.Deactivated()
	if !again && stored.PendingKeyPEM != nil {
		if stored, err = i.resolveRollover(ctx, stored); err != nil {
			return stored, err
		}
	}
	acct, err := fromStored(stored)
	if err != nil {
		return stored, err
	}
	out, err := adm.DeactivateAccount(ctx, i.cfg.DirectoryURL, i.name, i.now())
	if err != nil {
		return stored, err
	}
	i.acct, i.acctKeyPEM = nil, nil
	_, err = i.call(ctx, func(ctx context.Context) error {
		_, err := i.client.UpdateAccount(ctx, acme.Account{Status: acme.StatusDeactivated, Location: acct.Location, PrivateKey: acct.PrivateKey})
		return err
	})
	if err != nil && !(again && certfleet.ProblemType(err) == acme.ProblemTypeUnauthorized) {
		return out, fmt.Errorf("account %q is marked deactivated in the store (certfleet will not use it), but telling the CA %s failed: %w; run the command again to retry", i.name, i.cfg.DirectoryURL, finish(err))
	}
	i.logger.Info("account deactivated", "account", out.URL, "name", i.name)
	return out, nil
}

// ErrAccountExists is returned by Register for an account that is stored
// and valid.
var ErrAccountExists = errors.New("account already registered")

// Register registers the account at the CA explicitly: a new account when
// none is stored, or a new account in place of a deactivated one (the only
// way a deactivated account's name is used again). A stored valid account
// is left alone: the error wraps ErrAccountExists.
func (i *Issuer) Register(ctx context.Context) (certfleet.Account, error) {
	if i.cfg.Accounts == nil {
		return certfleet.Account{}, certfleet.Errorf(certfleet.EINVALID, "register account %q: no account store", i.name)
	}
	i.acctMu.Lock()
	stored, err := i.cfg.Accounts.Account(ctx, i.cfg.DirectoryURL, i.name)
	switch {
	case certfleet.ErrorCode(err) == certfleet.ENOTFOUND:
		i.acctMu.Unlock()
		if _, err := i.account(ctx); err != nil { // registers and stores it
			return certfleet.Account{}, err
		}
		return i.cfg.Accounts.Account(ctx, i.cfg.DirectoryURL, i.name)
	case err != nil:
		i.acctMu.Unlock()
		return stored, fmt.Errorf("register account %q: %w", i.name, err)
	case !stored.Deactivated():
		i.acctMu.Unlock()
		return stored, fmt.Errorf("register account %q: %w at %s as %s (status %s)", i.name, ErrAccountExists, i.cfg.DirectoryURL, stored.URL, stored.Status)
	}
	defer i.acctMu.Unlock()
	rep, ok := i.cfg.Accounts.(certfleet.AccountReplacer)
	if !ok {
		return stored, certfleet.Errorf(certfleet.EINVALID, "register account %q: the account store cannot replace accounts", i.name)
	}
	a, err := i.newAccount(ctx)
	if err != nil {
		return stored, err
	}
	keyPEM, err := certfleet.MarshalPrivateKey(a.PrivateKey)
	if err != nil {
		return stored, err
	}
	out, err := rep.ReplaceAccount(ctx, stored, certfleet.Account{
		CA: i.cfg.DirectoryURL, Name: i.name, Contact: a.Contact, KeyPEM: keyPEM, URL: a.Location, CreatedAt: i.now(),
	})
	if err != nil {
		return stored, fmt.Errorf("store new account %s: %w", a.Location, err)
	}
	i.acct, i.acctKeyPEM = nil, nil
	i.logger.Info("account registered in place of a deactivated one", "account", out.URL, "deactivated_account", stored.URL, "name", i.name)
	return out, nil
}
