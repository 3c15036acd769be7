package dashboard

import (
	"context"

	"github.com/certfleet/certfleet"
)

// scope decides, for one request, which certificates' incidents, audit
// events and endpoint results the user may see, by the one read rule of
// the API (certfleet.Token.MayRead) applied to the certificate's spec as it
// is now. A name whose spec is gone or disabled is visible to no one but
// an operator's admin token, which sees the whole trail as GET /v1/audit
// does; a tenant's admin token is a tenant's token. Specs are looked up
// once per name per request.
type scope struct {
	s     *Server
	u     *user
	seen  map[string]bool
	specs map[string]certfleet.CertificateSpec
}

func (s *Server) scopeOf(u *user) *scope {
	return &scope{s: s, u: u, seen: map[string]bool{}, specs: map[string]certfleet.CertificateSpec{}}
}

// everything reports whether the user sees every item, whatever its
// certificate: an admin token of the operator (no tenant).
func (sc *scope) everything() bool { return operatorAdmin(sc.u) }

func operatorAdmin(u *user) bool { return u.token.Tenant == "" && u.token.Has(certfleet.PermAdmin) }

// may reports whether the user may see items about certificate name ("" is
// no certificate: operator admins only).
func (sc *scope) may(ctx context.Context, name string) (bool, error) {
	if sc.everything() {
		return true, nil
	}
	if name == "" {
		return false, nil
	}
	if ok, done := sc.seen[name]; done {
		return ok, nil
	}
	sp, err := sc.s.Store.Spec(ctx, name)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
		sc.seen[name] = false
		return false, nil
	} else if err != nil {
		return false, err
	}
	ok := !sp.Disabled && sc.u.token.MayRead(sp)
	sc.seen[name] = ok
	if ok {
		sc.specs[name] = sp
	}
	return ok, nil
}

// mayCert is may for items that describe a certificate's own state
// (endpoint checks): MayRead for everyone, operator admins included, as
// the certificate pages are.
func (sc *scope) mayCert(ctx context.Context, name string) (bool, error) {
	if name == "" {
		return false, nil
	}
	if ok, done := sc.seen[name]; done && !sc.everything() {
		return ok, nil
	}
	sp, err := sc.s.Store.Spec(ctx, name)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return !sp.Disabled && sc.u.token.MayRead(sp), nil
}
