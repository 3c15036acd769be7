package identity

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet"
)

// Enrollment tokens' lifetimes, with reasons.
const (
	// DefaultEnrollTTL: a token is made right before the host is set up;
	// an hour covers a slow provisioning run.
	DefaultEnrollTTL = time.Hour
	// MaxEnrollTTL: a week, for images baked ahead; a token left lying
	// about longer is a standing credential, which is what it replaces.
	MaxEnrollTTL = 7 * 24 * time.Hour
)

// EnrollRequest is what an operator asks for an enrollment token.
type EnrollRequest struct {
	Description string
	Names       []string
	Permissions []certfleet.Permission // default read-keys
	Tenant      string
	TTL         time.Duration // default DefaultEnrollTTL, at most MaxEnrollTTL
	// Actor and Remote are recorded in the audit event.
	Actor, Remote string
}

// CreateEnrollToken makes an enrollment token (and the identity CA, if
// none exists yet), records it in the audit trail and returns it with its
// secret, which is shown once. A tenant's token must stay within the
// tenant's names (the store must then keep tenants). Errors are EINVALID
// and say what to change.
func (a *Authority) CreateEnrollToken(ctx context.Context, req EnrollRequest) (certfleet.EnrollToken, string, error) {
	a.init()
	if len(req.Permissions) == 0 {
		req.Permissions = []certfleet.Permission{certfleet.PermReadKeys}
	}
	if req.TTL == 0 {
		req.TTL = DefaultEnrollTTL
	}
	if req.TTL < 0 || req.TTL > MaxEnrollTTL {
		return certfleet.EnrollToken{}, "", certfleet.Errorf(certfleet.EINVALID, "ttl %s: give a duration up to %s", req.TTL, MaxEnrollTTL)
	}
	if slices.Contains(req.Permissions, certfleet.PermAdmin) {
		return certfleet.EnrollToken{}, "", certfleet.Errorf(certfleet.EINVALID,
			"a host identity cannot hold the admin permission; give read-certs, read-keys and/or request-names")
	}
	scope := certfleet.Token{Names: req.Names, Permissions: req.Permissions, Tenant: req.Tenant, Description: req.Description}
	if err := certfleet.ValidateToken(scope); err != nil {
		return certfleet.EnrollToken{}, "", err
	}
	if req.Tenant != "" {
		ts, ok := a.Store.(certfleet.TenantStore)
		if !ok {
			return certfleet.EnrollToken{}, "", certfleet.Errorf(certfleet.EINVALID, "this store keeps no tenants")
		}
		t, err := ts.Tenant(ctx, req.Tenant)
		if err != nil {
			return certfleet.EnrollToken{}, "", err
		}
		if err := certfleet.CheckTenantToken(scope, t); err != nil {
			return certfleet.EnrollToken{}, "", err
		}
	}
	if err := a.EnsureCA(ctx); err != nil {
		return certfleet.EnrollToken{}, "", fmt.Errorf("create the identity CA: %w", err)
	}
	id, secret, hash := certfleet.NewEnrollTokenSecret()
	now := a.Now()
	tok := certfleet.EnrollToken{ID: id, Description: req.Description, Names: req.Names, Permissions: req.Permissions,
		Tenant: req.Tenant, Hash: hash, CreatedAt: now, ExpiresAt: now.Add(req.TTL)}
	if err := a.Store.CreateEnrollToken(ctx, tok); err != nil {
		return certfleet.EnrollToken{}, "", err
	}
	a.event(ctx, certfleet.Event{At: now, Kind: certfleet.EventIdentity, Reason: "enroll_token_created", Actor: req.Actor,
		Remote: req.Remote, Detail: tok.AuditDetail()})
	return tok, secret, nil
}

// Revoke revokes identity id at once (every instance refuses it within a
// notification, or Refresh without one) and records it with what it
// allowed. revoked reports whether the store revoked it.
func (a *Authority) Revoke(ctx context.Context, id, actor, remote string) (revoked bool, err error) {
	a.init()
	i, err := a.Store.Identity(ctx, id)
	if err != nil {
		return false, err
	}
	now := a.Now()
	if err := a.Store.RevokeIdentity(ctx, id, now); err != nil {
		return false, err
	}
	detail := i.AuditDetail()
	if i.Revoked() {
		detail += "; already revoked at " + i.RevokedAt.UTC().Format(time.RFC3339)
	} else {
		i.RevokedAt = now
	}
	a.remember(i)
	a.event(ctx, certfleet.Event{At: now, Kind: certfleet.EventIdentity, Reason: "revoked", Actor: actor, Remote: remote,
		Serial: i.Serial, Detail: detail})
	return true, nil
}

// WriteList prints the identities and the enrollment tokens as tables.
func WriteList(ctx context.Context, s certfleet.IdentityStore, w io.Writer, now time.Time) error {
	ids, err := s.Identities(ctx)
	if err != nil {
		return err
	}
	toks, err := s.EnrollTokens(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IDENTITY\tNAME\tNAMES\tPERMISSIONS\tTENANT\tSTATE\tCERT VALID UNTIL\tRENEWED")
	for _, i := range ids {
		state := "valid"
		switch {
		case i.Revoked():
			state = "revoked " + i.RevokedAt.UTC().Format(time.RFC3339)
		case now.After(i.NotAfter):
			state = "expired (not renewed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Name, strings.Join(i.Names, ","), perms(i.Permissions),
			dash(i.Tenant), state, i.NotAfter.UTC().Format(time.RFC3339), i.RenewedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "ENROLLMENT TOKEN\tDESCRIPTION\tNAMES\tPERMISSIONS\tTENANT\tSTATE")
	for _, t := range toks {
		state := "unused, expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
		switch {
		case !t.UsedAt.IsZero():
			state = "used by " + t.UsedBy + " at " + t.UsedAt.UTC().Format(time.RFC3339)
		case now.After(t.ExpiresAt):
			state = "expired unused"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, dash(t.Description), strings.Join(t.Names, ","), perms(t.Permissions),
			dash(t.Tenant), state)
	}
	return tw.Flush()
}

func perms(ps []certfleet.Permission) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
