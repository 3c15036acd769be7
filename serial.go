package certfleet

import (
	"fmt"
	"math/big"
	"strings"
)

// Certificate serial numbers (issue 15, finding 8).
//
// The store keeps a serial as it always has: lowercase hex without leading
// zeros (big.Int.Text(16)), the form every stored comparison (revocation,
// ARI, compromise, agent reports, an instance finding its own issuance
// saved by another) was written against. Rewriting stored rows would have
// bought nothing but a window in which an instance or an agent of the
// previous release writes the old form next to the new, so the store is
// left alone and serials are formatted where people and programs see them:
// status, the API, the dashboard, hooks, commands' environment, alerts and
// the audit trail's readers. Input a person types (a serial copied from
// openssl) is compared with SameSerial, which accepts either form.

// FormatSerial returns serial (hex, in any case, with or without leading
// zeros, colons or a 0x prefix) as openssl x509 -serial prints it:
// uppercase hex, two digits for each byte of the number, so there is
// always an even number of digits ("0F", not "f"). Hooks and scripts that
// compare with openssl's output then match every time, not 15 times in 16.
// A value that is not hex is returned unchanged (it is shown, not
// trusted); "" stays "".
func FormatSerial(serial string) string {
	n, ok := parseSerial(serial)
	if !ok {
		return serial
	}
	return SerialString(n)
}

// SerialString returns n as openssl prints it (FormatSerial): OpenSSL's
// i2a_ASN1_INTEGER writes each byte of the magnitude as two uppercase hex
// digits, and a zero as "00".
func SerialString(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		return "00"
	}
	s := fmt.Sprintf("%X", b)
	if n.Sign() < 0 { // not allowed by RFC 5280 §4.1.2.2, shown as openssl does
		s = "-" + s
	}
	return s
}

// StoredSerial returns n in the form the store keeps (lowercase hex
// without leading zeros): what every producer of a stored serial uses.
func StoredSerial(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

// SameSerial reports whether a and b are the same serial number, whatever
// their form (stored, openssl's, with colons or a 0x prefix). Two values
// that are not hex are the same only when they are equal.
func SameSerial(a, b string) bool {
	na, oka := parseSerial(a)
	nb, okb := parseSerial(b)
	if !oka || !okb {
		return a == b
	}
	return na.Cmp(nb) == 0
}

// parseSerial reads a hex serial in any of the forms FormatSerial accepts.
func parseSerial(s string) (*big.Int, bool) {
	t := strings.TrimSpace(s)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(t, "-")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	t = strings.ReplaceAll(t, ":", "")
	if t == "" {
		return nil, false
	}
	n, ok := new(big.Int).SetString(t, 16)
	if !ok {
		return nil, false
	}
	if neg {
		n.Neg(n)
	}
	return n, true
}
