package selftest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/answers"
	"github.com/certfleet/certfleet/solver/tlsalpn01"
)

// testTLSALPN presents a probe key authorization for the name and makes
// the handshake a CA would (RFC 8737 §3): to the name's address on port
// 443, SNI the name, ALPN acme-tls/1. The certificate must carry the
// probe's acmeIdentifier (RFC 8737 §3: "the SHA-256 digest of the key
// authorization"), which only a certfleet responder can make.
//
// The responder looks challenges up by SNI name alone, so a probe would
// overwrite a real challenge of the same name in flight (another key type
// of the certificate ordering right now): when one is stored the probe is
// skipped and the name passes (a validation is running; the CA decides).
func (t *Tester) testTLSALPN(ctx context.Context, id certfleet.Identifier) (string, string) {
	if t.Store == nil {
		return certfleet.WaitProbe, "the tls-alpn-01 self-test has no store for its probe"
	}
	sni, err := tlsalpn01.ServerName(id)
	if err != nil {
		return certfleet.WaitProbe, err.Error()
	}
	addrs := []string{id.Value}
	if id.Type != certfleet.IdentifierIP {
		if addrs, err = t.resolver().Addrs(ctx, id.Value); err != nil {
			return certfleet.WaitDNS, fmt.Sprintf("%s does not resolve (%v): give it an A or AAAA record that points at certfleet or at the TCP proxy in front of it", id.Value, err)
		}
	}
	if _, err := t.Store.Challenge(ctx, certfleet.ChallengeTLSALPN01, sni); err == nil {
		return "", "" // a real validation of this name is in flight
	}
	keyAuth := probeSecret("certfleet-probe-answer-")
	tok := certfleet.ChallengeToken{Type: certfleet.ChallengeTLSALPN01, Key: sni, KeyAuthorization: keyAuth, Expires: t.now().Add(probeTTL)}
	if err := answers.Publish(ctx, t.Store, tok, 0); err != nil { // as in testHTTP
		return certfleet.WaitProbe, fmt.Sprintf("cannot store the tls-alpn-01 probe: %v", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		// Only our probe: a real challenge stored meanwhile stays.
		if cur, err := t.Store.Challenge(cctx, certfleet.ChallengeTLSALPN01, sni); err == nil && cur.KeyAuthorization == keyAuth {
			_ = t.Store.DeleteChallenge(cctx, certfleet.ChallengeTLSALPN01, sni)
		}
	}()
	sum := sha256.Sum256([]byte(keyAuth))
	want, _ := asn1.Marshal(sum[:])
	port := strconv.Itoa(t.port(t.TLSPort, 443))
	var last error
	for _, ip := range addrs {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
			ServerName: sni, NextProtos: []string{tlsalpn01.ALPNProto},
			InsecureSkipVerify: true, //nolint:gosec // the validation certificate is self-signed by design (RFC 8737 §3)
		}}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, port))
		if err != nil {
			last = err
			continue
		}
		st := c.(*tls.Conn).ConnectionState()
		c.Close()
		if st.NegotiatedProtocol != tlsalpn01.ALPNProto || len(st.PeerCertificates) == 0 {
			last = fmt.Errorf("the server there did not negotiate %s", tlsalpn01.ALPNProto)
			continue
		}
		for _, ext := range st.PeerCertificates[0].Extensions {
			if ext.Id.Equal(tlsalpn01.OIDACMEIdentifier) && bytes.Equal(ext.Value, want) {
				return "", ""
			}
		}
		last = fmt.Errorf("the certificate it sent is not certfleet's probe")
	}
	return certfleet.WaitTLSALPN, fmt.Sprintf("%s resolves to %s, and an %s handshake on port 443 did not reach certfleet (%v): forward port 443 (or acme-tls/1 by ALPN, e.g. HAProxy or nginx ssl_preread) to certfleet's tls-alpn-01 responder",
		id.Value, fmtAddrs(addrs), tlsalpn01.ALPNProto, last)
}
