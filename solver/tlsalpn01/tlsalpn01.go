// Package tlsalpn01 solves ACME tls-alpn-01 challenges (RFC 8737, and
// RFC 8738 §6 for IP addresses) centrally.
//
// Solver.Present records the key authorization in a certfleet.ChallengeStore
// under the SNI name the CA will send, so the Responder of any certfleet
// instance behind a TCP load balancer on port 443 can answer. The Responder
// answers only "acme-tls/1" handshakes with a self-signed validation
// certificate and closes each connection after the handshake; it serves no
// application data. A TLS server of ours that shares port 443 can still
// answer challenges by using Responder.GetCertificate (see its doc).
package tlsalpn01

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/answers"
)

// ALPNProto is the ALPN protocol of tls-alpn-01 validation handshakes
// (RFC 8737 §6.2).
const ALPNProto = "acme-tls/1"

// DefaultTTL is how long a presented challenge stays answerable when
// Solver.TTL is zero: long enough for any CA, short enough that a crash
// without CleanUp leaves little behind.
const DefaultTTL = time.Hour

// ServerName returns the TLS server name (SNI) a CA sends when validating id,
// and so the key under which the Solver stores its challenge: the DNS name
// itself, or for an IP address its reverse-DNS name without the trailing dot
// (RFC 8738 §6: the SNI "MUST be set to the ARPA-style reverse mapping
// name", e.g. "1.0.0.127.in-addr.arpa"; Pebble and Boulder both send this).
// Wildcards cannot be validated with tls-alpn-01 (RFC 8555 §7.1.3).
func ServerName(id certfleet.Identifier) (string, error) {
	switch id.Type {
	case certfleet.IdentifierDNS:
		if id.IsWildcard() {
			return "", certfleet.Errorf(certfleet.EINVALID, "wildcard %q cannot be validated with tls-alpn-01", id.Value)
		}
		if id.Value == "" {
			return "", certfleet.Errorf(certfleet.EINVALID, "empty DNS identifier")
		}
		return strings.ToLower(strings.TrimSuffix(id.Value, ".")), nil
	case certfleet.IdentifierIP:
		addr, err := netip.ParseAddr(id.Value)
		if err != nil {
			return "", certfleet.Errorf(certfleet.EINVALID, "IP identifier %q: %v", id.Value, err)
		}
		return reverseName(addr.Unmap()), nil
	}
	return "", certfleet.Errorf(certfleet.EINVALID, "identifier type %q cannot be validated with tls-alpn-01", id.Type)
}

// reverseName returns the in-addr.arpa or ip6.arpa name of addr (RFC 1035
// §3.5, RFC 3596 §2.5), without the trailing dot.
func reverseName(addr netip.Addr) string {
	var b strings.Builder
	if addr.Is4() {
		a := addr.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa", a[3], a[2], a[1], a[0])
		return b.String()
	}
	a := addr.As16()
	const hex = "0123456789abcdef"
	for i := len(a) - 1; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0x0f])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa")
	return b.String()
}

// addrFromReverse parses an in-addr.arpa or ip6.arpa name (lower case, no
// trailing dot) back into the address it maps.
func addrFromReverse(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		addr, err := netip.ParseAddr(labels[3] + "." + labels[2] + "." + labels[1] + "." + labels[0])
		if err != nil {
			return netip.Addr{}, false
		}
		return addr, true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var a [16]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			n := strings.IndexByte("0123456789abcdef", l[0])
			if n < 0 {
				return netip.Addr{}, false
			}
			// labels[0] is the lowest nibble of the last byte.
			byteIdx := 15 - i/2
			if i%2 == 0 {
				a[byteIdx] |= byte(n)
			} else {
				a[byteIdx] |= byte(n) << 4
			}
		}
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

// Solver presents tls-alpn-01 challenges by storing their key authorizations
// under the SNI name the CA will send. It is safe for concurrent use; its
// fields must not change after first use.
type Solver struct {
	// Store receives the challenges; every instance's Responder reads it.
	Store certfleet.ChallengeStore
	// Answers, when set, also receives each answer: share it with the
	// Responder of this process, which answers from it while the store is
	// unreachable.
	Answers *answers.Cache
	// TTL bounds how long a presented challenge is answered. Default
	// DefaultTTL.
	TTL time.Duration
	// KeepFor bounds how long Present keeps trying to store an answer
	// while the store is unreachable. Default answers.DefaultKeepFor.
	KeepFor time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

var _ certfleet.Solver = (*Solver)(nil)

// Present makes chal answerable by the Responder. It returns EINVALID for a
// challenge of another type or an identifier tls-alpn-01 cannot prove.
//
// One name has one answer at a time: presenting a second challenge for the
// same identifier (two orders in flight for one name) replaces the first.
func (s *Solver) Present(ctx context.Context, chal certfleet.Challenge) error {
	name, err := check(chal)
	if err != nil {
		return err
	}
	if s.Store == nil {
		return certfleet.Errorf(certfleet.EINVALID, "tls-alpn-01 solver has no store")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	t := now()
	tok := certfleet.ChallengeToken{
		Type:             certfleet.ChallengeTLSALPN01,
		Key:              name,
		KeyAuthorization: chal.KeyAuthorization,
		Expires:          t.Add(ttl),
	}
	if s.Answers != nil {
		s.Answers.Put(tok, t)
	}
	err = answers.Publish(ctx, s.Store, tok, s.KeepFor)
	if err != nil {
		if s.Answers != nil {
			s.Answers.Delete(name)
		}
		return fmt.Errorf("store tls-alpn-01 challenge for %s: %w", chal.Identifier.Value, err)
	}
	return nil
}

// CleanUp removes chal's answer. Removing one that is not there is not an
// error, so CleanUp may be repeated or run after a failed Present.
func (s *Solver) CleanUp(ctx context.Context, chal certfleet.Challenge) error {
	name, err := check(chal)
	if err != nil {
		return err
	}
	if s.Store == nil {
		return certfleet.Errorf(certfleet.EINVALID, "tls-alpn-01 solver has no store")
	}
	if s.Answers != nil {
		s.Answers.Delete(name)
	}
	if err := s.Store.DeleteChallenge(ctx, certfleet.ChallengeTLSALPN01, name); err != nil {
		return fmt.Errorf("delete tls-alpn-01 challenge for %s: %w", chal.Identifier.Value, err)
	}
	return nil
}

func check(chal certfleet.Challenge) (string, error) {
	if chal.Type != certfleet.ChallengeTLSALPN01 {
		return "", certfleet.Errorf(certfleet.EINVALID, "tls-alpn-01 solver given a %s challenge", chal.Type)
	}
	if chal.KeyAuthorization == "" {
		return "", certfleet.Errorf(certfleet.EINVALID, "tls-alpn-01 challenge for %s has no key authorization", chal.Identifier.Value)
	}
	return ServerName(chal.Identifier)
}
