package daemon

import (
	"context"
	"fmt"
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
	id, secret, hash := certfleet.NewTokenSecret()
	t := certfleet.Token{ID: id, Description: description, Names: names, Permissions: perms, URLCredential: url, Hash: hash, CreatedAt: time.Now()}
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

// TokenDetail describes a token for the audit trail: never its secret or
// hash (Token.AuditDetail).
func TokenDetail(t certfleet.Token) string { return t.AuditDetail() }
