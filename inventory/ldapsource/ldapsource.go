// Package ldapsource is the inventory source of an LDAP directory (issue
// 18): it searches a base with a filter, as in (letsencrypt=TRUE), and maps
// attributes of the entries found onto certificate keys, as in identifiers
// → associatedDomain. It reads with paged results (RFC 2696), so a
// directory of any size is read in full or not at all, and learns of
// changes at once through the server's content synchronization (RFC 4533
// refreshAndPersist: OpenLDAP's syncprov overlay) when the server offers
// it; otherwise the reconciler's schedule, with its change detection,
// alone keeps it current.
//
// It speaks LDAP through github.com/go-ldap/ldap/v3. It does not decode
// the entries into certificates (package inventory does, with the config
// file's own rules), and it writes nothing to the directory: writing
// certificates back is a deploy action's job (docs/inventory.md).
package ldapsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certfleet/certfleet/inventory"
)

// Defaults.
const (
	// DefaultTimeout bounds connecting and each request of a read.
	DefaultTimeout = time.Minute
	// PageSize is the number of entries per page of a read: small enough
	// for any server's per-page limit, large enough that 10,000 entries
	// are ten round trips.
	PageSize = 1000
)

// listKeys take every value of their attribute; the other keys take one.
var listKeys = []string{"identifiers", "key_types"}

// Source reads certificates from an LDAP directory. Set the fields before
// first use.
type Source struct {
	// URL is ldap://HOST[:PORT] or ldaps://HOST[:PORT]. Required.
	URL string
	// BindDN and Password, when set, bind before searching; else the
	// search is anonymous.
	BindDN, Password string
	// Base, Filter and Scope ("sub", "one" or "base") select the entries.
	// Base and Filter are required; Scope defaults to "sub".
	Base, Filter, Scope string
	// Attributes maps certificate keys to the attributes holding them.
	// Required: identifiers.
	Attributes map[string]string
	// Persist makes Watch use the server's content synchronization when
	// it offers it.
	Persist bool
	// RootCAs verifies an ldaps:// server; nil uses the system roots.
	RootCAs *x509.CertPool
	// Timeout: see DefaultTimeout.
	Timeout time.Duration
	// Logger says once why a source is not watched. Nil discards.
	Logger *slog.Logger
}

var (
	_ inventory.Source  = (*Source)(nil)
	_ inventory.Watcher = (*Source)(nil)
)

func (s *Source) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

func (s *Source) scope() int {
	switch s.Scope {
	case "base":
		return ldap.ScopeBaseObject
	case "one":
		return ldap.ScopeSingleLevel
	}
	return ldap.ScopeWholeSubtree
}

// connect dials and binds; the connection is closed when ctx ends, which
// ends any request on it.
func (s *Source) connect(ctx context.Context) (*ldap.Conn, func(), error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("url %q: %w", s.URL, err)
	}
	opts := []ldap.DialOpt{ldap.DialWithDialer(&net.Dialer{Timeout: s.timeout()})}
	if u.Scheme == "ldaps" {
		opts = append(opts, ldap.DialWithTLSConfig(&tls.Config{RootCAs: s.RootCAs, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}))
	}
	conn, err := ldap.DialURL(s.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w; check that the server runs and the source's url", s.URL, err)
	}
	conn.SetTimeout(s.timeout())
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	closeAll := func() { stop(); conn.Close() }
	if s.BindDN != "" {
		if err := conn.Bind(s.BindDN, s.Password); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("bind to %s as %s: %w; check the source's bind_dn and password", s.URL, s.BindDN, err)
		}
	}
	return conn, closeAll, nil
}

// attributes returns the attributes a read asks for.
func (s *Source) attributes() []string {
	set := make(map[string]bool)
	for _, a := range s.Attributes {
		set[a] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// Read implements inventory.Source: one Entry per entry found, whose
// Fields are its mapped attributes; multi-valued ones sorted (LDAP values
// are a set: RFC 4511 §4.1.7), so that the order a server returns them in
// changes nothing. A read that the server cuts short (a size limit, a
// referral) is a failure: what it left out would be withdrawn otherwise.
func (s *Source) Read(ctx context.Context) ([]inventory.Entry, error) {
	conn, closeConn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	req := ldap.NewSearchRequest(s.Base, s.scope(), ldap.NeverDerefAliases, 0, 0, false, s.Filter, s.attributes(), nil)
	res, err := conn.SearchWithPaging(req, PageSize)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, s.searchError(err)
	}
	if len(res.Referrals) > 0 {
		return nil, fmt.Errorf("search %s: the server answered with referrals (%s), which certfleet does not follow; point url at the server that holds the entries", s.Base, strings.Join(res.Referrals, ", "))
	}
	entries := make([]inventory.Entry, 0, len(res.Entries))
	for _, e := range res.Entries {
		entries = append(entries, inventory.Entry{Where: e.DN, Fields: s.fields(e)})
	}
	return entries, nil
}

func (s *Source) searchError(err error) error {
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded), ldap.IsErrorWithCode(err, ldap.LDAPResultAdminLimitExceeded):
		return fmt.Errorf("search %s: the server returned only part of the entries (a size limit): let the bind DN read them all (slapd: limits dn.exact=\"%s\" size=unlimited): %w", s.Base, s.BindDN, err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return fmt.Errorf("search %s: no such entry; check the source's base: %w", s.Base, err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultFilterError):
		return fmt.Errorf("search %s: the server refuses the filter %s: %w", s.Base, s.Filter, err)
	}
	return fmt.Errorf("search %s with %s: %w", s.Base, s.Filter, err)
}

// fields maps an entry's attributes onto certificate keys.
func (s *Source) fields(e *ldap.Entry) map[string]any {
	f := make(map[string]any, len(s.Attributes))
	for key, attr := range s.Attributes {
		vals := e.GetEqualFoldAttributeValues(attr)
		if len(vals) == 0 {
			continue
		}
		if slices.Contains(listKeys, key) || len(vals) > 1 {
			// More than one value where one is wanted is passed as a
			// list: the config's decoder reports it with the key.
			vals = slices.Clone(vals)
			slices.Sort(vals)
			list := make([]any, len(vals))
			for i, v := range vals {
				list[i] = v
			}
			f[key] = list
			continue
		}
		v := vals[0]
		if key == "reuse_key" { // LDAP Boolean syntax (RFC 4517 §3.3.3)
			switch v {
			case "TRUE":
				f[key] = true
				continue
			case "FALSE":
				f[key] = false
				continue
			}
		}
		f[key] = v
	}
	return f
}

// SyncControl is the OID of the Content Synchronization request control
// (RFC 4533 §2.2), which a server lists in its root DSE's supportedControl
// when it offers content synchronization.
const SyncControl = ldap.ControlTypeSyncRequest

// Watch implements inventory.Watcher: when Persist is set and the server
// offers content synchronization, it keeps a refreshAndPersist search
// (RFC 4533 §3.4) of the source's base and filter, and calls changed at
// every message the server sends: an entry added, changed, deleted, or
// one that stopped matching the filter (the attribute removed). It asks
// for no attributes (what changed is read by the next Read). It returns
// nil at once when it has nothing to watch, saying once why.
func (s *Source) Watch(ctx context.Context, changed func()) error {
	if !s.Persist {
		return nil
	}
	conn, closeConn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	ok, err := s.offersSync(conn)
	if err != nil {
		return err
	}
	if !ok {
		s.noSync()
		return nil
	}
	conn.SetTimeout(0) // a persistent search answers whenever something changes
	req := ldap.NewSearchRequest(s.Base, s.scope(), ldap.NeverDerefAliases, 0, 0, false, s.Filter, []string{"1.1"}, nil)
	resp := conn.Syncrepl(ctx, req, 64, ldap.SyncRequestModeRefreshAndPersist, nil, false)
	changed() // what changed before the search started
	for resp.Next() {
		changed()
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := resp.Err(); err != nil {
		// A server may list the control (slapd does, with syncprov
		// loaded for any of its databases) and still refuse it for this
		// base: "unavailableCriticalExtension" (RFC 4511 §4.1.11).
		if ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailableCriticalExtension) {
			s.noSync()
			return nil
		}
		return fmt.Errorf("persistent search of %s on %s: %w", s.Base, s.URL, err)
	}
	return errors.New("the server ended the persistent search of " + s.Base)
}

func (s *Source) noSync() {
	if s.Logger != nil {
		s.Logger.Info("the LDAP server offers no content synchronization for the source's base (RFC 4533; OpenLDAP: the syncprov overlay on its database): its entries are re-read on the source's interval, with change detection, instead of at each change",
			"url", s.URL, "base", s.Base)
	}
}

// offersSync reads the root DSE's supportedControl (RFC 4512 §5.1).
func (s *Source) offersSync(conn *ldap.Conn) (bool, error) {
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"supportedControl"}, nil)
	res, err := conn.Search(req)
	if err != nil {
		return false, fmt.Errorf("read the root DSE of %s (which controls it supports): %w", s.URL, err)
	}
	for _, e := range res.Entries {
		if slices.Contains(e.GetAttributeValues("supportedControl"), SyncControl) {
			return true, nil
		}
	}
	return false, nil
}
