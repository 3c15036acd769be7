package config

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"time"

	"github.com/certfleet/certfleet"
)

var (
	identitiesKeys = []string{"lifetime", "require_client_cert_for_keys", "client_ca_file", "subject"}
	subjectKeys    = []string{"subject", "names", "permissions", "tenant"}
)

// Identities configures host identities ([identities], issue 17): the
// client certificates certfleet's own CA issues to enrolled hosts, and an
// operator's own client CA whose certificates' subjects map to scopes. Host
// identities authenticate on [api] listen when it serves TLS
// (tls_certificate); they need no configuration to be used.
type Identities struct {
	// Lifetime of an identity's client certificate; 0 is the default
	// (identity.DefaultLifetime, a day). Between 10 minutes and 30 days.
	Lifetime time.Duration
	// RequireClientCertForKeys refuses bearer tokens for private key
	// reads on [api] listen: only a client certificate reads keys there.
	// URL credentials on url_listen (Bud, Caddy) are not affected.
	RequireClientCertForKeys bool
	// ClientCAFile is a PEM file of the operator's own client CAs, ""
	// for none; Subjects map its certificates to scopes.
	ClientCAFile string
	Subjects     []IdentitySubject
}

// IdentitySubject is one [[identities.subject]]: a client certificate of
// ClientCAFile whose subject is Subject (as "CN=web1.example.org,O=Example")
// gets Names and Permissions, within Tenant ("" for the operator's).
type IdentitySubject struct {
	Subject     string
	Names       []string
	Permissions []certfleet.Permission
	Tenant      string
}

func (d *decoder) identities(top *table, cfg *Config) {
	t := d.subtable(top, "identities")
	if t == nil {
		return
	}
	defer d.unknown(t, identitiesKeys)
	id := &cfg.Identities
	if s, p, ok := d.str(t, "lifetime"); ok {
		mark := d.mark()
		lt := d.duration(p, s)
		switch {
		case d.mark() != mark:
		case lt < 10*time.Minute || lt > 30*24*time.Hour:
			d.problemf(p, "%q is out of range; give between \"10m\" and \"720h\" (the default is \"24h\"; agents renew at half)", s)
		default:
			id.Lifetime = lt
		}
	}
	if v, p, ok := d.get(t, "require_client_cert_for_keys"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		id.RequireClientCertForKeys = b
		if b && cfg.API.TLSCertificate == "" {
			d.problemf(p, "client certificates come over TLS: set [api] tls_certificate too, or leave this false")
		}
	}
	if s, p, ok := d.str(t, "client_ca_file"); ok && s != "" {
		if f, ok := d.abs(p, s); ok {
			id.ClientCAFile = f
			if _, err := LoadClientCAs(f); err != nil {
				d.problemf(p, "%v", err)
			}
		}
	}
	v, p, ok := d.get(t, "subject")
	if !ok {
		return
	}
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be an array of tables: write each mapping under its own [[identities.subject]] header")
		return
	}
	if id.ClientCAFile == "" && len(arr) > 0 {
		d.problemf(p, "subjects map certificates of your own client CA: set client_ca_file too")
	}
	seen := map[string]bool{}
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			d.problemf(p.index(i), "must be a table, not %s", typeName(e))
			continue
		}
		st := newTable(m, p.index(i))
		if sub, ok := d.identitySubject(st); ok {
			if seen[sub.Subject] {
				d.problemf(st.p.key("subject"), "subject %q is mapped twice; keep one mapping", sub.Subject)
				continue
			}
			seen[sub.Subject] = true
			id.Subjects = append(id.Subjects, sub)
		}
	}
}

func (d *decoder) identitySubject(t *table) (IdentitySubject, bool) {
	defer d.unknown(t, subjectKeys)
	mark := d.mark()
	var s IdentitySubject
	if v, p, ok := d.str(t, "subject"); !ok || v == "" {
		d.problemf(p, "required: the certificate subject as Go writes it, as in \"CN=web1.example.org,O=Example\"")
	} else {
		s.Subject = v
	}
	names, paths, p, ok := d.strList(t, "names")
	if !ok || len(names) == 0 {
		d.problemf(p, "required: the name patterns this certificate may read, as in [\"web1.example.org\"]")
	}
	for i, n := range names {
		if err := certfleet.ValidateNamePattern(n); err != nil {
			d.problemf(paths[i], "%v", err)
		}
	}
	s.Names = names
	perms, ppaths, pp, ok := d.strList(t, "permissions")
	if !ok {
		perms, ppaths = []string{string(certfleet.PermReadKeys)}, []path{pp}
	}
	for i, ps := range perms {
		perm, err := certfleet.ParsePermission(ps)
		switch {
		case err != nil:
			d.problemf(ppaths[i], "%v", err)
		case perm == certfleet.PermAdmin:
			d.problemf(ppaths[i], "a client certificate cannot hold admin; give read-certs, read-keys and/or request-names")
		case !slices.Contains(s.Permissions, perm):
			s.Permissions = append(s.Permissions, perm)
		}
	}
	if v, _, ok := d.str(t, "tenant"); ok {
		s.Tenant = v
	}
	return s, d.mark() == mark
}

// LoadClientCAs reads a PEM file of client CA certificates.
func LoadClientCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, certfleet.Errorf(certfleet.EINVALID, "%s holds no PEM certificate: give the CA certificates that sign your clients' certificates", file)
	}
	return pool, nil
}
