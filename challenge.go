package certfleet

import (
	"context"
	"fmt"
	"time"
)

// ChallengeType is an ACME challenge type (RFC 8555 §8, RFC 8737).
type ChallengeType string

// Challenge types. ChallengeWebroot is ours: http-01 answered by writing the
// token into a directory that an existing web server serves.
const (
	ChallengeHTTP01    ChallengeType = "http-01"
	ChallengeWebroot   ChallengeType = "webroot"
	ChallengeTLSALPN01 ChallengeType = "tls-alpn-01"
	ChallengeDNS01     ChallengeType = "dns-01"
	// ChallengeDNSPersist01 is draft-ietf-acme-dns-persist: the domain's
	// owner publishes, once, a TXT record at _validation-persist.NAME that
	// authorizes one ACME account of one CA (§3, §4); certfleet never
	// writes it and needs no DNS credentials.
	ChallengeDNSPersist01 ChallengeType = "dns-persist-01"
)

// ChallengeTypes lists the challenge types a spec may name.
var ChallengeTypes = []ChallengeType{ChallengeHTTP01, ChallengeWebroot, ChallengeTLSALPN01, ChallengeDNS01, ChallengeDNSPersist01}

// ParseChallengeType parses a challenge type name.
func ParseChallengeType(s string) (ChallengeType, error) {
	for _, ct := range ChallengeTypes {
		if ChallengeType(s) == ct {
			return ct, nil
		}
	}
	return "", fmt.Errorf("unknown challenge %q (use http-01, webroot, tls-alpn-01, dns-01 or dns-persist-01)", s)
}

// ACMEType returns the challenge type as the CA names it: webroot is http-01.
func (c ChallengeType) ACMEType() string {
	if c == ChallengeWebroot {
		return string(ChallengeHTTP01)
	}
	return string(c)
}

// CanProve reports whether challenge c can prove control of id.
// RFC 8555 §7.1.3: wildcard authorizations are proven with dns-01 only ("the
// server MUST NOT offer http-01 or tls-alpn-01"); RFC 8738 §7: dns-01 cannot
// prove an IP address. draft-ietf-acme-dns-persist (§5, wildcards): a
// dns-persist-01 record with policy=wildcard proves a wildcard; like dns-01
// it cannot prove an IP address.
func (c ChallengeType) CanProve(id Identifier) error {
	switch {
	case id.IsWildcard() && c != ChallengeDNS01 && c != ChallengeDNSPersist01:
		return fmt.Errorf("wildcard %q can only be validated with dns-01 or dns-persist-01, not %s", id.Value, c)
	case id.Type == IdentifierIP && (c == ChallengeDNS01 || c == ChallengeDNSPersist01):
		return fmt.Errorf("IP address %q cannot be validated with %s; use http-01 or tls-alpn-01", id.Value, c)
	}
	return nil
}

// Challenge is one challenge a solver must answer.
type Challenge struct {
	Type       ChallengeType // as the CA names it (http-01, tls-alpn-01, dns-01)
	Identifier Identifier    // the identifier being proven (for a wildcard, the base name)
	Token      string        // the challenge token (RFC 8555 §8.1)
	// KeyAuthorization is token || '.' || base64url(JWK thumbprint)
	// (RFC 8555 §8.1). It is derived from the account key but is not
	// secret enough to protect it; still, log it only at debug level.
	KeyAuthorization string
	// URL is the challenge's URL at the CA, unique per challenge.
	URL string
	// DNSProvider and Webroot are the certificate's own choice of dns-01
	// provider and named web root (CertificateSpec.DNSProvider, Webroot;
	// ours), for solvers that route by them; "" routes by identifier.
	DNSProvider, Webroot string
	// For dns-persist-01 (draft-ietf-acme-dns-persist §3.1): the CA's
	// issuer-domain-names offered in the challenge, the URL of the account
	// answering it, and whether the authorization is for the wildcard of
	// Identifier (RFC 8555 §7.1.4 "wildcard"), which needs policy=wildcard.
	IssuerDomainNames []string
	AccountURL        string
	Wildcard          bool
}

// Solver answers challenges. Implementations must be safe for concurrent use
// and honour context cancellation.
//
// Present makes the challenge answerable and must return quickly; slow
// readiness checks (DNS propagation) belong in Wait (see Waiter). CleanUp
// removes whatever Present created; it is called whether or not Present or
// validation succeeded, possibly after a restart, so it must tolerate
// missing state and be idempotent.
type Solver interface {
	Present(ctx context.Context, chal Challenge) error
	CleanUp(ctx context.Context, chal Challenge) error
}

// Waiter is an optional interface of a Solver: Wait blocks until the presented
// challenge can be validated by the CA (for dns-01: the record is served by
// every authoritative server), or ctx ends.
type Waiter interface {
	Wait(ctx context.Context, chal Challenge) error
}

// ChallengeToken is a presented challenge response kept in the store so that
// any instance's responder can answer the CA.
type ChallengeToken struct {
	Type ChallengeType // http-01 or tls-alpn-01
	// Key is what the responder looks up: the token for http-01, the
	// identifier value for tls-alpn-01 (the CA sends only the SNI name).
	Key              string
	KeyAuthorization string
	Expires          time.Time
}

// ChallengeStore keeps presented challenge responses. Safe for concurrent use.
type ChallengeStore interface {
	// PutChallenge stores (or replaces) the response for (t.Type, t.Key).
	PutChallenge(ctx context.Context, t ChallengeToken) error
	// DeleteChallenge removes it; deleting a missing one is not an error.
	DeleteChallenge(ctx context.Context, typ ChallengeType, key string) error
	// Challenge returns the response, or an ENOTFOUND error when there is
	// none or it has expired. It is on the validation path of the CA and
	// must be fast.
	Challenge(ctx context.Context, typ ChallengeType, key string) (ChallengeToken, error)
}

// ChallengeLister is an optional interface of a ChallengeStore: the tokens
// of a type that have not expired, for responders that keep a copy in
// memory to answer from while the store is unreachable (issue 16). The
// table holds only tokens in flight, so the list is short.
type ChallengeLister interface {
	Challenges(ctx context.Context, typ ChallengeType) ([]ChallengeToken, error)
}
