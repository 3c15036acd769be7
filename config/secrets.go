package config

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
)

// Secrets kept in the store. A secret-valued key (rfc2136 secret, webhook
// bearer_token and password, the secret keys of the types written through
// lego, eab_hmac_key, an inventory source's password) may name a stored secret,
// "store:NAME", instead of holding it; the daemon resolves the names when it
// opens the store (ResolveSecrets). The config file, often kept in Git, then
// holds no secret at all.

// secretRef checks the NAME of a "store:NAME" value at p.
func (d *decoder) secretRef(p path, name string) {
	if err := certfleet.ValidateSecretName(name); err != nil {
		d.problemf(p, "%s (a stored secret's name, after %q)", certfleet.ErrorMessage(err), certfleet.SecretRefPrefix)
	}
}

// validTSIGSecret reports whether s is a TSIG secret: non-empty base64.
func validTSIGSecret(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) > 0
}

// validEABKey reports whether s is an EAB MAC key: non-empty base64url.
func validEABKey(s string) bool {
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return err == nil && len(key) > 0
}

// HasSecretRefs reports whether any secret-valued setting names a stored
// secret ("store:NAME").
func (c *Config) HasSecretRefs() bool {
	found := false
	c.eachSecret(func(_ string, v *string, _ func(string) bool, _ string) {
		if _, ok := certfleet.SecretRef(*v); ok {
			found = true
		}
	})
	return found
}

// eachSecret calls fn with every non-empty secret-valued setting: its place
// in the file (as a person writes it), a pointer to its value in c, and the
// check and hint for a resolved value. Maps hold struct copies, so fn's
// changes are written back.
func (c *Config) eachSecret(fn func(where string, v *string, valid func(string) bool, hint string)) {
	for _, name := range slices.Sorted(maps.Keys(c.Accounts)) {
		a := c.Accounts[name]
		if a.EABHMACKey != "" {
			fn(fmt.Sprintf("[accounts.%s] eab_hmac_key", name), &a.EABHMACKey, validEABKey,
				"not a base64url string (letters, digits, '-' and '_', as the CA issued it)")
			c.Accounts[name] = a
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.DNS01.Providers)) {
		p := c.DNS01.Providers[name]
		where := fmt.Sprintf("[dns01.providers.%s] ", name)
		if p.Secret != "" {
			fn(where+"secret", &p.Secret, validTSIGSecret, "not base64; copy it from the tsig-keygen output")
		}
		if p.BearerToken != "" {
			fn(where+"bearer_token", &p.BearerToken, nil, "")
		}
		if p.Password != "" {
			fn(where+"password", &p.Password, nil, "")
		}
		for _, k := range DNSProviderKeys(p.Type) {
			if v := p.Keys[k.Name]; k.Kind == KeySecret && v != "" {
				fn(where+k.Name, &v, nil, "")
				p.Keys[k.Name] = v
			}
		}
		c.DNS01.Providers[name] = p
	}
	for i := range c.Inventory {
		inv := &c.Inventory[i]
		where := fmt.Sprintf("[inventory.%s] password", quoteKey(inv.Name))
		if inv.Postgres.Password != "" {
			fn(where, &inv.Postgres.Password, nil, "")
		}
		if inv.LDAP.Password != "" {
			fn(where, &inv.LDAP.Password, nil, "")
		}
	}
}

// Clone returns a copy of c whose account and DNS provider tables can be
// changed (ResolveSecrets) without changing c.
func (c *Config) Clone() *Config {
	out := *c
	out.Accounts = maps.Clone(c.Accounts)
	out.DNS01.Providers = maps.Clone(c.DNS01.Providers)
	for name, p := range out.DNS01.Providers {
		p.Keys = maps.Clone(p.Keys)
		out.DNS01.Providers[name] = p
	}
	out.Inventory = slices.Clone(c.Inventory)
	return &out
}

// ResolveSecrets replaces every "store:NAME" secret of c by lookup(where,
// NAME) and checks the value as the setting requires (a TSIG secret must be
// base64). Errors name the setting, never the value. Call it on a Clone:
// it changes c.
func (c *Config) ResolveSecrets(lookup func(where, name string) (string, error)) error {
	var problems []string
	c.eachSecret(func(where string, v *string, valid func(string) bool, hint string) {
		name, ok := certfleet.SecretRef(*v)
		if !ok {
			return
		}
		val, err := lookup(where, name)
		if err != nil {
			problems = append(problems, err.Error())
			return
		}
		if valid != nil && !valid(val) {
			problems = append(problems, fmt.Sprintf("%s: stored secret %q is %s (the value is a secret and not shown)", where, name, hint))
			return
		}
		*v = val
	})
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", c.File, strings.Join(problems, "; "))
	}
	return nil
}
