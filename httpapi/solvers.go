package httpapi

import (
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
)

// Solvers is what a certfleet can answer challenges with (Server.Solvers).
type Solvers struct {
	// HTTP01 and TLSALPN01: the built-in responder runs.
	HTTP01, TLSALPN01 bool
	// DNSProviders are the names of [dns01.providers]; DefaultDNSProvider
	// the one a dns-01 name without dns_provider uses ("" for none).
	DNSProviders       []string
	DefaultDNSProvider string
	// Webroots are the names of [webroots].
	Webroots []string
}

// available lists the challenges sv can answer, for a problem's detail.
func (sv Solvers) available() string {
	var out []string
	if sv.HTTP01 {
		out = append(out, "http-01")
	}
	if sv.TLSALPN01 {
		out = append(out, "tls-alpn-01")
	}
	if len(sv.DNSProviders) > 0 {
		out = append(out, "dns-01")
	}
	if len(sv.Webroots) > 0 {
		out = append(out, "webroot")
	}
	if len(out) == 0 {
		return "none is configured"
	}
	return "this server answers " + strings.Join(out, ", ")
}

// offered lists what pick returns of the server's Solvers, for a problem's
// detail: "; configured: a, b", or "" when unknown.
func (s *Server) offered(pick func(Solvers) []string) string {
	if s.Solvers == nil {
		return ""
	}
	if l := pick(s.Solvers()); len(l) > 0 {
		return "; configured: " + strings.Join(l, ", ")
	}
	return "; none is configured"
}

// checkSolvable refuses a spec no configured solver can serve, saying what
// to configure or to ask for instead (issue 12: not a 202 followed by a
// failure at the CA and a retry hours later).
func (s *Server) checkSolvable(sp certfleet.CertificateSpec) *Problem {
	if s.Solvers == nil {
		return nil
	}
	sv := s.Solvers()
	switch sp.Challenge {
	case certfleet.ChallengeHTTP01:
		if !sv.HTTP01 {
			return problemf(certfleet.EINVALID, "challenge http-01: this certfleet runs no http-01 responder, so the CA could not validate the names; the operator enables it with [http01] listen = \"ADDRESS\" (port 80 of the names forwarded to it), or ask for another challenge (%s)", sv.available())
		}
	case certfleet.ChallengeTLSALPN01:
		if !sv.TLSALPN01 {
			return problemf(certfleet.EINVALID, "challenge tls-alpn-01: this certfleet runs no tls-alpn-01 responder; the operator enables it with [tlsalpn01] listen = \"ADDRESS\" (port 443 of the names passed to it for ALPN acme-tls/1), or ask for another challenge (%s)", sv.available())
		}
	case certfleet.ChallengeDNS01:
		switch {
		case len(sv.DNSProviders) == 0:
			return problemf(certfleet.EINVALID, "challenge dns-01: no DNS provider is configured, so certfleet cannot write the TXT records; the operator adds one ([dns01.providers.NAME], docs/dns01.md), or ask for another challenge (%s)", sv.available())
		case sp.DNSProvider != "" && !slices.Contains(sv.DNSProviders, sp.DNSProvider):
			return problemf(certfleet.EINVALID, "dns_provider %q is not configured; configured: %s", sp.DNSProvider, strings.Join(sv.DNSProviders, ", "))
		case sp.DNSProvider == "" && sv.DefaultDNSProvider == "":
			return problemf(certfleet.EINVALID, "challenge dns-01: give dns_provider, since there is no default; configured: %s", strings.Join(sv.DNSProviders, ", "))
		}
	case certfleet.ChallengeWebroot:
		if !slices.Contains(sv.Webroots, sp.Webroot) {
			return problemf(certfleet.EINVALID, "webroot %q is not in the config's [webroots]%s", sp.Webroot, s.offered(func(sv Solvers) []string { return sv.Webroots }))
		}
	}
	return nil
}
