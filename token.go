package certfleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Permission is what an API token may do, within its name patterns.
type Permission string

// Permissions. PermAdmin implies every other one and also allows managing
// tokens and reading the whole fleet's list.
const (
	PermReadCerts    Permission = "read-certs"    // certificates, chains, status
	PermReadKeys     Permission = "read-keys"     // private keys (every read is recorded)
	PermRequestNames Permission = "request-names" // PUT/DELETE names, retry, CSRs
	PermAdmin        Permission = "admin"
)

// Permissions lists every permission, in documentation order.
var Permissions = []Permission{PermReadCerts, PermReadKeys, PermRequestNames, PermAdmin}

// ParsePermission parses a permission name.
func ParsePermission(s string) (Permission, error) {
	p := Permission(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(Permissions, p) {
		return p, nil
	}
	return "", fmt.Errorf("unknown permission %q (use read-certs, read-keys, request-names or admin)", s)
}

// TokenPrefix starts every API token secret, so secret scanners and people
// recognise one.
const TokenPrefix = "cft_"

// Token is an API credential. The secret itself is shown once, at creation,
// and only its SHA-256 (Hash) is stored: a database leak reveals no usable
// token.
type Token struct {
	// ID identifies the token in listings and the key-read log; it is not
	// secret.
	ID string `json:"id"`
	// Description says whose it is ("billing panel", "bud on lb1").
	Description string `json:"description"`
	// Names are the name patterns the token covers: "example.org" (that
	// name only), "*.example.org" (every name below example.org, at any
	// depth, and the wildcard identifier itself) or "*" (every name).
	Names []string `json:"names"`
	// Permissions are what it may do within Names.
	Permissions []Permission `json:"permissions"`
	// URLCredential marks a token for consumers that cannot send headers
	// (Bud, Caddy): it is accepted only inside URLs, on the listener for
	// them, and only for reads. Ordinary tokens are accepted only in the
	// Authorization header, so a URL in a shared log never holds one.
	URLCredential bool `json:"url_credential,omitempty"`
	// Tenant binds the token to a tenant (issue 12): it may request only
	// names within the tenant's patterns, its requests become the
	// tenant's certificates, and it sees only the tenant's certificates.
	// "" is an operator's token. A tenant's token never holds admin.
	Tenant string `json:"tenant,omitempty"`
	// Hash is SHA-256 of the secret. Never shown.
	Hash      []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is when it was revoked; zero while it is valid.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// LogValue keeps the hash out of logs.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", t.ID), slog.String("description", t.Description))
}

// Revoked reports whether the token has been revoked.
func (t Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// Has reports whether the token grants p. Admin grants everything, and
// read-keys grants read-certs (a key is of no use without its certificate).
func (t Token) Has(p Permission) bool {
	return slices.Contains(t.Permissions, p) || slices.Contains(t.Permissions, PermAdmin) ||
		(p == PermReadCerts && slices.Contains(t.Permissions, PermReadKeys))
}

// Covers reports whether name (a normalised identifier value) is within the
// token's name patterns.
func (t Token) Covers(name string) bool {
	for _, p := range t.Names {
		if MatchNamePattern(p, name) {
			return true
		}
	}
	return false
}

// MayRead is the one authorization rule for reads (docs/api.md,
// "Authorization"): a token may read a certificate — its status, its PEM
// documents and above all anything that carries its private key (privkey,
// bud, get_certificate, the agent's sync, the dashboard) — only if the
// token covers every identifier of that certificate, and, for a tenant's
// token, the certificate is the tenant's. Whoever holds a key can
// impersonate every name in its certificate: covering some is not enough.
// Every read path applies it to the certificate's spec, and the paths that
// send a certificate apply it again, with MayReadCertificate, to the
// certificate as issued. Outside it a certificate is answered as "not
// found" (lists, by name) or as a name outside the token (name endpoints),
// so the answer reveals nothing about it.
func (t Token) MayRead(sp CertificateSpec) bool {
	return t.MayReadCertificate(sp.Tenant, sp.Identifiers)
}

// MayReadCertificate is MayRead for a certificate of tenant with the
// identifiers ids (an Issuance's, which may differ from its spec's while a
// re-issue is due). A certificate without identifiers is readable by no
// one.
func (t Token) MayReadCertificate(tenant string, ids []Identifier) bool {
	if len(ids) == 0 || (t.Tenant != "" && t.Tenant != tenant) {
		return false
	}
	for _, id := range ids {
		if !t.Covers(id.Value) {
			return false
		}
	}
	return true
}

// MatchNamePattern reports whether name is covered by pattern: "*" covers
// everything; "*.example.org" covers "*.example.org" and every name ending
// in ".example.org"; any other pattern covers only itself. Both are compared
// case-insensitively.
func MatchNamePattern(pattern, name string) bool {
	pattern, name = strings.ToLower(pattern), strings.ToLower(name)
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return name == pattern || strings.HasSuffix(name, pattern[1:])
	}
	return pattern == name
}

// ValidateNamePattern checks a token's name pattern.
func ValidateNamePattern(p string) error {
	if p == "*" {
		return nil
	}
	id, err := ParseIdentifier(p)
	if err != nil {
		return fmt.Errorf("name pattern: %w", err)
	}
	if id.Value != strings.ToLower(strings.TrimSuffix(p, ".")) {
		return fmt.Errorf("name pattern %q: write it in its normalised form %q", p, id.Value)
	}
	return nil
}

// ValidateToken checks a token about to be made (CLI or API): at least one
// valid name pattern, at least one permission, a URL credential for reads
// only, and a tenant's token within the tenant (CheckTenantToken, for the
// caller that has the tenant). The error is EINVALID and says what to
// change.
func ValidateToken(t Token) error {
	if len(t.Names) == 0 {
		return Errorf(EINVALID, "names: give at least one pattern, e.g. '*.example.org' (or '*' for all)")
	}
	for _, p := range t.Names {
		if err := ValidateNamePattern(p); err != nil {
			return Errorf(EINVALID, "names: %v", err)
		}
	}
	if len(t.Permissions) == 0 {
		return Errorf(EINVALID, "permissions: give at least one of read-certs, read-keys, request-names, admin")
	}
	for _, p := range t.Permissions {
		if _, err := ParsePermission(string(p)); err != nil {
			return Errorf(EINVALID, "permissions: %v", err)
		}
	}
	if t.URLCredential && slices.ContainsFunc(t.Permissions, func(p Permission) bool { return p == PermAdmin || p == PermRequestNames }) {
		return Errorf(EINVALID, "URL credentials are for reads only: give read-certs and/or read-keys")
	}
	if len(t.Description) > 1000 {
		return Errorf(EINVALID, "description: longer than 1000 bytes")
	}
	return nil
}

// AuditDetail describes a token for the audit trail: never its secret or
// hash.
func (t Token) AuditDetail() string {
	perms := make([]string, len(t.Permissions))
	for i, p := range t.Permissions {
		perms[i] = string(p)
	}
	d := fmt.Sprintf("%s: names %s; permissions %s", t.ID, strings.Join(t.Names, ","), strings.Join(perms, ","))
	if t.URLCredential {
		d += "; URL credential"
	}
	if t.Tenant != "" {
		d += "; tenant " + t.Tenant
	}
	if t.Description != "" {
		d += fmt.Sprintf("; description %q", t.Description)
	}
	return d
}

// NewTokenSecret makes a new token secret (256 random bits) and its ID, and
// returns the hash to store.
func NewTokenSecret() (id, secret string, hash []byte) {
	return newSecret("tok_", TokenPrefix)
}

// newSecret makes a bearer secret (256 random bits) behind secretPrefix, an
// ID (48 random bits) behind idPrefix, and the secret's hash to store.
func newSecret(idPrefix, secretPrefix string) (id, secret string, hash []byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	secret = secretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	return idPrefix + hex.EncodeToString(idb[:]), secret, HashTokenSecret(secret)
}

// HashTokenSecret returns the stored form of a secret.
func HashTokenSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// TokenHashEqual compares two hashes in constant time.
func TokenHashEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// KeyRead records one read of a private key through the API.
type KeyRead struct {
	TokenID    string    `json:"token_id"`
	Spec       string    `json:"certificate"`
	KeyType    KeyType   `json:"key_type"`
	IssuanceID int64     `json:"issuance_id"`
	Serial     string    `json:"serial"`
	Remote     string    `json:"remote"` // the client's address
	At         time.Time `json:"at"`
	// Count is how many reads the record stands for when the API
	// aggregated a consumer re-reading the same key version (Caddy's
	// get_certificate, Bud: one read per TLS handshake) into one record
	// per interval; 0 (or 1) is one read. At is then the last of them and
	// Since the first.
	Count int       `json:"count,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// TokenStore keeps API tokens and the log of private key reads. Safe for
// concurrent use.
type TokenStore interface {
	// CreateToken stores t (ID, Hash and CreatedAt set by the caller).
	// A duplicate ID or hash is ECONFLICT.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash returns the token whose Hash is hash, revoked or not, or
	// ENOTFOUND. It is on every request's path and must be fast.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// Token returns the token with this ID, revoked or not, or ENOTFOUND:
	// one indexed lookup (the dashboard re-checks a session's token with
	// it on every request).
	Token(ctx context.Context, id string) (Token, error)
	// Tokens lists every token, oldest first.
	Tokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks the token revoked at at; ENOTFOUND when there is
	// no such token. Revoking a revoked token keeps the first time.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// RecordKeyRead appends r to the key-read log (never updated or
	// deleted). It must be durable before the key is sent.
	RecordKeyRead(ctx context.Context, r KeyRead) error
	// KeyReads lists the newest key reads first, at most limit (0: all).
	KeyReads(ctx context.Context, limit int) ([]KeyRead, error)
}
