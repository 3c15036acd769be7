package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// TokenStore keeps API tokens and the audit trail of their changes.
type TokenStore interface {
	certfleet.TokenStore
	certfleet.EventSink
}

// CreateToken makes and stores an API token, records a token_created event
// by the operator running this process (Operator, Host), and returns the
// token's secret, which is shown once and never stored. When only the event
// fails, the token and secret are returned with the error.
func CreateToken(ctx context.Context, ts TokenStore, description string, names []string, perms []certfleet.Permission, url bool) (certfleet.Token, string, error) {
	return createToken(ctx, ts, certfleet.Token{Description: description, Names: names, Permissions: perms, URLCredential: url}, nil)
}

// createToken is CreateToken of a token made from t, checked by check (if
// set) before it is stored.
func createToken(ctx context.Context, ts TokenStore, t certfleet.Token, check func(certfleet.Token) error) (certfleet.Token, string, error) {
	id, secret, hash := certfleet.NewTokenSecret()
	t.ID, t.Hash, t.CreatedAt = id, hash, time.Now()
	if check != nil {
		if err := check(t); err != nil {
			return t, "", err
		}
	}
	if err := ts.CreateToken(ctx, t); err != nil {
		return t, "", err
	}
	e := OperatorEvent(certfleet.EventTokenCreated, TokenDetail(t))
	e.At = t.CreatedAt
	if err := ts.RecordEvent(ctx, e); err != nil {
		return t, secret, fmt.Errorf("token %s created, but it is missing from the audit trail: %w", t.ID, err)
	}
	return t, secret, nil
}

// ParseTokenScope reads the -names and -permissions of certfleet token
// create (comma-separated) for a token, a URL credential when url: valid
// patterns, at least one, known permissions, and reads only for a URL
// credential. The error says which flag is wrong.
func ParseTokenScope(names, perms string, url bool) ([]string, []certfleet.Permission, error) {
	var pats []string
	for _, p := range strings.Split(names, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if err := certfleet.ValidateNamePattern(p); err != nil {
			return nil, nil, fmt.Errorf("-names: %w", err)
		}
		pats = append(pats, p)
	}
	if len(pats) == 0 {
		return nil, nil, fmt.Errorf("-names: give at least one pattern, e.g. -names '*.example.org' (or '*' for all)")
	}
	var ps []certfleet.Permission
	for _, p := range strings.Split(perms, ",") {
		perm, err := certfleet.ParsePermission(p)
		if err != nil {
			return nil, nil, fmt.Errorf("-permissions: %w", err)
		}
		if !slices.Contains(ps, perm) {
			ps = append(ps, perm)
		}
	}
	if url && slices.ContainsFunc(ps, func(p certfleet.Permission) bool { return p == certfleet.PermAdmin || p == certfleet.PermRequestNames }) {
		return nil, nil, fmt.Errorf("-url tokens are for reads only: give read-certs and/or read-keys")
	}
	return pats, ps, nil
}

// TokenDetail describes a token for the audit trail: never its secret or
// hash (Token.AuditDetail).
func TokenDetail(t certfleet.Token) string { return t.AuditDetail() }
