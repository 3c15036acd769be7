package config

// The ACME accounts: [ca] (the default account) and [accounts.NAME].

import (
	"bytes"
	"fmt"
	"maps"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
)

var accountKeys = []string{"directory", "trusted_roots", "email", "eab_key_id", "eab_hmac_key", "caa_identities"}

var accountNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// accounts decodes [ca] and [accounts.NAME].
func (d *decoder) accounts(top *table, cfg *Config) {
	var def Account
	if t := d.subtable(top, "ca"); t != nil {
		def = d.account(t, certfleet.DefaultAccount)
		if _, set := t.m["directory"]; !set && len(t.m) > 0 {
			d.caMissing = true
			d.problemf(t.p.key("directory"), "required: the CA's directory URL, or letsencrypt, letsencrypt-staging or zerossl")
		}
		if def.Directory != "" {
			cfg.Accounts[certfleet.DefaultAccount] = def
		}
	}
	t := d.subtable(top, "accounts")
	if t == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(t.m)) {
		at := d.subtable(t, name)
		if at == nil {
			continue
		}
		switch {
		case name == certfleet.DefaultAccount:
			d.problemf(at.p, "the account name %q is reserved for [ca]", name)
			continue
		case !accountNameRE.MatchString(name):
			d.problemf(at.p, "account name %s: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", quoteKey(name))
			continue
		}
		a := d.account(at, name)
		if _, set := at.m["directory"]; !set {
			if def.Directory == "" {
				d.problemf(at.p.key("directory"), "required, since [ca] has no directory to inherit")
			}
			a.Directory = def.Directory
			if a.TrustedRoots == "" {
				a.TrustedRoots = def.TrustedRoots
			}
		}
		cfg.Accounts[name] = a
	}
}

func (d *decoder) account(t *table, name string) Account {
	a := Account{Name: name}
	if s, p, ok := d.str(t, "directory"); ok {
		u, err := resolveDirectory(s)
		if err != nil {
			d.problemf(p, "%v", err)
		}
		a.Directory = u
	}
	if s, p, ok := d.str(t, "trusted_roots"); ok && s != "" {
		a.TrustedRoots, _ = d.abs(p, s)
	}
	if s, p, ok := d.str(t, "email"); ok && s != "" {
		s = strings.TrimPrefix(s, "mailto:")
		if addr, err := mail.ParseAddress(s); err != nil || addr.Name != "" || addr.Address != s {
			d.problemf(p, "%q is not an email address", s)
		}
		a.Email = s
	}
	kid, kidPath, kidSet := d.str(t, "eab_key_id")
	hmac, hmacPath, hmacSet := d.str(t, "eab_hmac_key")
	kidSet, hmacSet = kidSet && kid != "", hmacSet && hmac != ""
	switch {
	case kidSet && !hmacSet:
		d.problemf(hmacPath, "required with eab_key_id: External Account Binding needs both the key ID and the HMAC key")
	case hmacSet && !kidSet:
		d.problemf(kidPath, "required with eab_hmac_key: External Account Binding needs both the key ID and the HMAC key")
	}
	if hmacSet {
		if ref, ok := certfleet.SecretRef(hmac); ok {
			d.secretRef(hmacPath, ref)
		} else if !validEABKey(hmac) {
			// Never quote hmac in a problem: it is a secret.
			d.problemf(hmacPath, "not a base64url string (letters, digits, '-' and '_', as the CA issued it); the value is a secret and not shown")
		}
	}
	a.EABKeyID, a.EABHMACKey = kid, hmac
	if ids := d.caaIdentitiesOf(t); len(ids) > 0 {
		if d.caa == nil {
			d.caa = map[string][]string{}
		}
		d.caa[name] = ids
	}
	d.unknown(t, accountKeys)
	return a
}

// resolveDirectory turns a directory alias or URL into the directory URL.
func resolveDirectory(s string) (string, error) {
	if u, ok := directoryAliases[strings.ToLower(s)]; ok {
		return u, nil
	}
	u, err := url.Parse(s)
	// RFC 8555 §6.1: "Each ACME function is accomplished by the client
	// sending a sequence of HTTPS requests to the server".
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("%q is neither an https:// URL nor a known CA (letsencrypt, letsencrypt-staging, zerossl)", s)
	}
	return s, nil
}

// secretOnLine reports whether line (1-based) of data sets eab_hmac_key.
func secretOnLine(data []byte, line int) bool {
	if line < 1 {
		return bytes.Contains(data, []byte("eab_hmac_key"))
	}
	lines := bytes.Split(data, []byte("\n"))
	// A multi-line value may end on a later line than its key: look at
	// the line and the few before it.
	for l := max(line-3, 1); l <= line && l <= len(lines); l++ {
		if bytes.Contains(lines[l-1], []byte("eab_hmac_key")) {
			return true
		}
	}
	return false
}
