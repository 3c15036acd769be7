package certfleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Host identities (issue 17): a host proves who it is with a client
// certificate issued by certfleet's own small CA, instead of a bearer token
// kept in a file. It enrolls once with an EnrollToken and renews its
// certificate itself; from then on its scope is bound to its Identity. The
// CA, enrollment and the checks of a client certificate are in package
// identity; these are the records the stores keep.

// Prefixes of identity credentials, so people and scanners recognise them.
const (
	// EnrollTokenPrefix starts an enrollment token's secret.
	EnrollTokenPrefix = "cfe_"
	// IdentityIDPrefix starts an identity's ID: principals whose ID has it
	// are identities, not API tokens (ActorOf).
	IdentityIDPrefix = "idn_"
	// ExternalIDPrefix starts the ID of a principal authenticated by the
	// operator's own client CA (a subject mapped to a scope in the config).
	ExternalIDPrefix = "ext:"
)

// Identity is a host known by its client certificate. Its scope (Names,
// Permissions, Tenant) is that of the enrollment token it enrolled with,
// and holds for every certificate issued to it; revoking the identity
// refuses all of them at once.
type Identity struct {
	// ID names the identity (idn_…); it is the client certificate's
	// subject common name.
	ID string `json:"id"`
	// Name is what the host called itself at enrollment (its agent name).
	Name string `json:"name"`
	// Names, Permissions and Tenant are the scope, as a Token's.
	Names       []string     `json:"names"`
	Permissions []Permission `json:"permissions"`
	Tenant      string       `json:"tenant,omitempty"`
	// EnrollToken is the ID of the enrollment token used.
	EnrollToken string `json:"enroll_token"`
	// Serial (hex) and NotAfter are those of the newest certificate issued
	// to it; RenewedAt is when that was (the enrollment, at first).
	Serial    string    `json:"serial"`
	NotAfter  time.Time `json:"not_after"`
	RenewedAt time.Time `json:"renewed_at"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is when it was revoked; zero while it is valid.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the identity has been revoked.
func (i Identity) Revoked() bool { return !i.RevokedAt.IsZero() }

// Principal is the identity as the API authorises it: a Token value with
// the identity's ID and scope, so that every read rule (Token.MayRead) and
// the key-read log apply unchanged.
func (i Identity) Principal() Token {
	return Token{ID: i.ID, Description: "identity " + i.Name, Names: i.Names, Permissions: i.Permissions,
		Tenant: i.Tenant, CreatedAt: i.CreatedAt, RevokedAt: i.RevokedAt}
}

// AuditDetail describes an identity for the audit trail.
func (i Identity) AuditDetail() string {
	d := fmt.Sprintf("%s (%s): names %s; permissions %s", i.ID, i.Name, strings.Join(i.Names, ","), joinPerms(i.Permissions))
	if i.Tenant != "" {
		d += "; tenant " + i.Tenant
	}
	return d
}

func joinPerms(ps []Permission) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ",")
}

// EnrollToken lets one host enroll once: short-lived, single use, scoped to
// the names the host may have. Only the SHA-256 of its secret is stored.
type EnrollToken struct {
	ID          string       `json:"id"`
	Description string       `json:"description"`
	Names       []string     `json:"names"`
	Permissions []Permission `json:"permissions"`
	Tenant      string       `json:"tenant,omitempty"`
	Hash        []byte       `json:"-"`
	CreatedAt   time.Time    `json:"created_at"`
	ExpiresAt   time.Time    `json:"expires_at"`
	// UsedAt and UsedBy are set when a host enrolled with it (UsedBy is
	// the identity's ID); a used token never enrolls again.
	UsedAt time.Time `json:"used_at,omitzero"`
	UsedBy string    `json:"used_by,omitempty"`
}

// AuditDetail describes an enrollment token for the audit trail (never its
// secret or hash).
func (t EnrollToken) AuditDetail() string {
	d := fmt.Sprintf("enrollment token %s: names %s; permissions %s; expires %s", t.ID, strings.Join(t.Names, ","),
		joinPerms(t.Permissions), t.ExpiresAt.UTC().Format(time.RFC3339))
	if t.Tenant != "" {
		d += "; tenant " + t.Tenant
	}
	if t.Description != "" {
		d += fmt.Sprintf("; description %q", t.Description)
	}
	return d
}

// NewEnrollTokenSecret makes a new enrollment token secret (256 random bits),
// its ID and the hash to store (HashTokenSecret).
func NewEnrollTokenSecret() (id, secret string, hash []byte) {
	return newSecret("enr_", EnrollTokenPrefix)
}

// NewIdentityID makes a new identity ID.
func NewIdentityID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return IdentityIDPrefix + hex.EncodeToString(b[:])
}

// IsIdentityID reports whether a principal's ID is an identity's (or an
// operator-CA subject's) rather than an API token's.
func IsIdentityID(id string) bool {
	return strings.HasPrefix(id, IdentityIDPrefix) || strings.HasPrefix(id, ExternalIDPrefix)
}

// ActorOf is the audit actor of a principal's ID: "identity:ID" for a
// host identity or a client certificate of the operator's CA, "token:ID"
// for an API token.
func ActorOf(id string) string {
	if IsIdentityID(id) {
		return "identity:" + id
	}
	return "token:" + id
}

// IdentityCA is certfleet's CA for client identities. KeyPEM is sealed in
// the store like every private key (package seal); stores return it opened.
type IdentityCA struct {
	ID        string    `json:"id"`
	CertPEM   []byte    `json:"cert_pem"`
	KeyPEM    []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// IdentityCertificate is what enrollment and renewal send the host: its
// identity, its new client certificate and the identity CA's certificate.
type IdentityCertificate struct {
	Identity Identity
	CertPEM  []byte
	CAPEM    []byte
}

// IdentityStore keeps the identity CA, enrollment tokens and identities.
// Safe for concurrent use.
type IdentityStore interface {
	// CreateIdentityCA stores ca unless a CA exists already; either way it
	// returns the CA in force (the oldest), so that instances creating one
	// at once agree on one.
	CreateIdentityCA(ctx context.Context, ca IdentityCA) (IdentityCA, error)
	// IdentityCAs returns the CAs, oldest first (none: an empty slice).
	IdentityCAs(ctx context.Context) ([]IdentityCA, error)
	// CreateEnrollToken stores t (ID, Hash, CreatedAt, ExpiresAt set).
	CreateEnrollToken(ctx context.Context, t EnrollToken) error
	// EnrollTokens lists the enrollment tokens, oldest first.
	EnrollTokens(ctx context.Context) ([]EnrollToken, error)
	// Enroll uses the enrollment token whose hash is hash to create id, in
	// one transaction: the token must exist, be unused and not expired at
	// id.CreatedAt, else EUNAUTHORIZED (the same error for all three,
	// so an attacker learns nothing). id's scope is taken from the token.
	// Of two enrollments with one token at once, exactly one succeeds.
	Enroll(ctx context.Context, hash []byte, id Identity) (Identity, error)
	// Identity returns the identity id, revoked or not, or ENOTFOUND.
	Identity(ctx context.Context, id string) (Identity, error)
	// Identities lists every identity, oldest first.
	Identities(ctx context.Context) ([]Identity, error)
	// RenewIdentity records a new certificate of a valid identity
	// (serial, notAfter at at); a revoked or unknown one is EUNAUTHORIZED.
	RenewIdentity(ctx context.Context, id, serial string, notAfter, at time.Time) error
	// RevokeIdentity marks it revoked at at (revoking again keeps the
	// first time) and notifies every instance sharing the store
	// (certfleet.Notifier); ENOTFOUND when there is no such identity.
	RevokeIdentity(ctx context.Context, id string, at time.Time) error
}
