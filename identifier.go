package certfleet

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxIdentifiers is the most identifiers one certificate may hold. Let's
// Encrypt and most public CAs refuse orders with more than 100 names.
const MaxIdentifiers = 100

// IdentifierType is the type of an ACME identifier (RFC 8555 §9.7.7, RFC 8738).
type IdentifierType string

// Identifier types.
const (
	IdentifierDNS IdentifierType = "dns"
	IdentifierIP  IdentifierType = "ip"
)

// Identifier is one subject of a certificate: a DNS name (possibly a wildcard)
// or an IP address, always in normalised form (lower-case ASCII, no trailing
// dot; canonical IP text).
type Identifier struct {
	Type  IdentifierType `json:"type"`
	Value string         `json:"value"`
}

// String returns the identifier's value.
func (id Identifier) String() string { return id.Value }

// IsWildcard reports whether id is a wildcard DNS name ("*.example.org").
func (id Identifier) IsWildcard() bool {
	return id.Type == IdentifierDNS && strings.HasPrefix(id.Value, "*.")
}

// idnaProfile converts Unicode names to their ASCII (A-label) form the way
// browsers and CAs do (UTS #46 lookup rules), without rejecting the
// underscore-free ASCII names we validate ourselves below.
var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule())

// ParseIdentifier parses and normalises one identifier: an IPv4 or IPv6
// address, or a DNS name, optionally a wildcard whose "*" is the whole
// leftmost label. Internationalised names are converted to their ASCII form.
// The error says what is wrong with the input.
func ParseIdentifier(s string) (Identifier, error) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return Identifier{}, fmt.Errorf("empty identifier")
	}
	if !utf8.ValidString(raw) {
		return Identifier{}, fmt.Errorf("identifier %q: not valid UTF-8", s)
	}
	ipText := raw
	if inner, ok := strings.CutPrefix(raw, "["); ok {
		if inner, ok = strings.CutSuffix(inner, "]"); ok {
			ipText = inner // "[::1]", as IPv6 literals are written in URLs
		}
	}
	if addr, err := netip.ParseAddr(ipText); err == nil {
		if addr.Zone() != "" {
			return Identifier{}, fmt.Errorf("identifier %q: IP address with a zone cannot be certified", s)
		}
		return Identifier{Type: IdentifierIP, Value: addr.Unmap().String()}, nil
	}
	name := strings.TrimSuffix(raw, ".")
	wildcard := false
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		wildcard = true
		name = rest
	}
	if strings.Contains(name, "*") {
		return Identifier{}, fmt.Errorf("identifier %q: a wildcard must be the whole leftmost label, as in *.example.org", s)
	}
	ascii := strings.ToLower(name)
	if !isASCII(name) {
		// Only internationalised names go through IDNA; our own checks
		// below give clearer messages for ASCII input.
		a, err := idnaProfile.ToASCII(name)
		if err != nil {
			return Identifier{}, fmt.Errorf("identifier %q: not a valid internationalised DNS name: %v", s, err)
		}
		ascii = strings.ToLower(a)
	}
	if err := checkDNSName(ascii); err != nil {
		return Identifier{}, fmt.Errorf("identifier %q: %v", s, err)
	}
	if wildcard {
		if !strings.Contains(ascii, ".") {
			return Identifier{}, fmt.Errorf("identifier %q: a wildcard needs at least two labels after *.", s)
		}
		ascii = "*." + ascii
	}
	return Identifier{Type: IdentifierDNS, Value: ascii}, nil
}

// checkDNSName applies the preferred name syntax of RFC 1035 §2.3.1 as
// relaxed by RFC 1123 §2.1 (labels may start with a digit).
func checkDNSName(name string) error {
	if name == "" {
		return fmt.Errorf("empty DNS name")
	}
	if len(name) > 253 {
		return fmt.Errorf("DNS name is %d characters long; the limit is 253", len(name))
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("DNS name must have at least two labels (a bare host name cannot be certified by a CA)")
	}
	for _, l := range labels {
		if l == "" {
			return fmt.Errorf("DNS name has an empty label")
		}
		if len(l) > 63 {
			return fmt.Errorf("label %q is %d characters long; the limit is 63", l, len(l))
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("label %q has the character %q; only letters, digits and hyphens are allowed", l, c)
			}
		}
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" {
		return fmt.Errorf("top-level label %q is all digits", tld)
	}
	return nil
}

// ParseIdentifiers parses a list of identifiers, rejecting duplicates (after
// normalisation), an empty list and lists longer than MaxIdentifiers. The
// result keeps the input order.
func ParseIdentifiers(values []string) ([]Identifier, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("no identifiers")
	}
	if len(values) > MaxIdentifiers {
		return nil, fmt.Errorf("%d identifiers; a certificate may hold at most %d", len(values), MaxIdentifiers)
	}
	ids := make([]Identifier, 0, len(values))
	seen := make(map[Identifier]string, len(values))
	for _, v := range values {
		id, err := ParseIdentifier(v)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[id]; dup {
			if first == v {
				return nil, fmt.Errorf("identifier %q is listed twice", v)
			}
			return nil, fmt.Errorf("identifier %q is the same name as %q", v, first)
		}
		seen[id] = v
		ids = append(ids, id)
	}
	return ids, nil
}

// SortedIdentifiers returns a sorted copy of ids, for comparing sets.
func SortedIdentifiers(ids []Identifier) []Identifier {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b Identifier) int {
		if c := strings.Compare(string(a.Type), string(b.Type)); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}

// IdentifierValues returns the values of ids, in order.
func IdentifierValues(ids []Identifier) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Value
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
