package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/certfleet/certfleet"
)

// part is which PEM document of a certificate is asked for.
type part int

const (
	partCert part = iota
	partChain
	partFullchain
	partKey
)

var partNames = [...]string{"cert", "chain", "fullchain", "privkey"}

// readable returns the spec serving name (lookup: specFor or specCovering)
// if p may read it (Token.MayRead), nil when there is none, and the
// out-of-scope problem when p may not: the same answer as for a name
// outside the token.
func (s *Server) readable(ctx context.Context, p principal, name string,
	lookup func(context.Context, string) (*certfleet.CertificateSpec, error)) (*certfleet.CertificateSpec, *Problem, error) {
	sp, err := lookup(ctx, name)
	if err != nil || sp == nil {
		return nil, nil, err
	}
	if !p.token.MayRead(*sp) {
		return nil, outOfScope(name), nil
	}
	return sp, nil, nil
}

// managedSpec is readable for a handler that answers at once: it writes
// the problem (an internal error as what, out of scope, or not managed)
// and returns nil when the request ends there.
func (s *Server) managedSpec(w http.ResponseWriter, r *http.Request, p principal, name, what string) *certfleet.CertificateSpec {
	sp, prob, err := s.readable(r.Context(), p, name, s.specFor)
	switch {
	case err != nil:
		s.internal(w, r, what, err)
	case prob != nil:
		s.fail(w, r, false, prob)
	case sp == nil:
		s.fail(w, r, false, problemf(certfleet.ENOTFOUND, "%q is not managed", name))
	}
	return sp
}

// current returns the current issuance of sp's key type of family ("" picks
// the only one, or ECDSA of a dual certificate) if it holds name and p may
// read it as issued: a certificate made before the spec lost names, or for
// another tenant, is "not yet" until its replacement is issued.
func (s *Server) current(ctx context.Context, p principal, sp *certfleet.CertificateSpec, family, name string) (*certfleet.Issuance, error) {
	var kt certfleet.KeyType
	for _, k := range sp.KeyTypes {
		if family == "" && (len(sp.KeyTypes) == 1 || k.Family() == "ecdsa") || k.Family() == family {
			kt = k
			break
		}
	}
	if kt == "" {
		return nil, errorf(certfleet.ENOTFOUND, "%q has no %s certificate (key types: %v)", name, family, sp.KeyTypes)
	}
	cur, err := s.currentID(ctx, certfleet.JobKey{Spec: sp.Name, KeyType: kt})
	if err != nil {
		return nil, err
	}
	if cur == 0 {
		return nil, errorf(certfleet.ENOTFOUND, "no %s certificate for %q yet; long-poll with ?wait=30s or see its status", kt, name)
	}
	iss, err := s.issuance(ctx, cur)
	if err != nil {
		return nil, err
	}
	if !holds(iss.Identifiers, name) || !p.token.MayReadCertificate(iss.Tenant, iss.Identifiers) || iss.Tenant != sp.Tenant {
		// A name just added to a pack: the pack's current certificate
		// does not hold it until the re-issue. Names just removed: the
		// current one holds names the token may not read. Moved to
		// another tenant: the current one is the former tenant's.
		return nil, errorf(certfleet.ENOTFOUND, "no %s certificate for %q yet; long-poll with ?wait=30s or see its status", kt, name)
	}
	return iss, nil
}

// holds reports whether ids certify name, directly or by a wildcard.
func holds(ids []certfleet.Identifier, name string) bool {
	for _, id := range ids {
		if id.Value == name {
			return true
		}
		if id.IsWildcard() {
			if _, parent, ok := strings.Cut(name, "."); ok && "*."+parent == id.Value {
				return true
			}
		}
	}
	return false
}

func keyFamily(r *http.Request) (string, *Problem) {
	switch v := r.URL.Query().Get("key"); v {
	case "", "rsa", "ecdsa":
		return v, nil
	default:
		return "", problemf(certfleet.EINVALID, "key=%q: use rsa or ecdsa", v)
	}
}

func pemReply(iss *certfleet.Issuance, pt part, tokenID string) reply {
	rep := reply{status: http.StatusOK, ctype: "application/x-pem-file",
		etag: `"` + iss.Fingerprint[:24] + "-" + partNames[pt] + `"`}
	switch pt {
	case partCert, partChain:
		leaf, chain, err := iss.SplitChain()
		if err != nil {
			return problemReply(problemf(certfleet.EINTERNAL, "internal error"))
		}
		rep.body = leaf
		if pt == partChain {
			rep.body = chain
		}
	case partFullchain:
		rep.body = iss.ChainPEM
	case partKey:
		if len(iss.KeyPEM) == 0 {
			return problemReply(problemf(certfleet.ENOTFOUND, "certfleet does not hold this certificate's private key (CSR mode, or destroyed)"))
		}
		rep.body = iss.KeyPEM
		rep.keyRead = &certfleet.KeyRead{TokenID: tokenID, Spec: iss.Spec, KeyType: iss.KeyType, IssuanceID: iss.ID, Serial: iss.Serial}
	}
	return rep
}

// pemHandler serves one PEM part of a name's current certificate.
func pemHandler(pt part) func(s *Server, w http.ResponseWriter, r *http.Request, p principal) {
	return func(s *Server, w http.ResponseWriter, r *http.Request, p principal) {
		id, prob := s.parseHostname(r, p)
		if prob == nil {
			var fam string
			if fam, prob = keyFamily(r); prob == nil {
				s.longPoll(w, r, func(ctx context.Context) reply {
					sp, prob, err := s.readable(ctx, p, id.Value, s.specFor)
					if err != nil {
						return s.errReply(r, "certificate", err)
					}
					if prob != nil {
						return s.problemReply(r, prob)
					}
					if sp == nil {
						return s.notFound(r, "%q is not managed; request it with PUT /v1/names/%s", id.Value, id.Value)
					}
					iss, err := s.current(ctx, p, sp, fam, id.Value)
					if err != nil {
						return s.errReply(r, "certificate", err)
					}
					return pemReply(iss, pt, p.token.ID)
				})
				return
			}
		}
		s.fail(w, r, p.urlCred, prob)
	}
}

// budReply is the JSON Bud's SNI backend expects (bud's README, "sni"):
// "cert" and "key" as PEM strings, or arrays of them to serve several
// certificates (here: RSA and ECDSA) for one name.
type budReply struct {
	Cert any `json:"cert"`
	Key  any `json:"key"`
}

// bud answers Bud's SNI lookup. Bud drops the client's connection on a
// non-JSON answer, so every error (problem documents included) is JSON.
func (s *Server) bud(w http.ResponseWriter, r *http.Request, p principal) {
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, p.urlCred, prob)
		return
	}
	ctx := r.Context()
	sp, prob, err := s.readable(ctx, p, id.Value, s.specCovering)
	if err != nil {
		s.internal(w, r, "bud", err)
		return
	}
	if prob != nil {
		s.fail(w, r, p.urlCred, prob)
		return
	}
	if sp == nil {
		s.send(w, r, s.notFound(r, "%q is not managed", id.Value), p.urlCred)
		return
	}
	var certs, keys []string
	var reads []certfleet.KeyRead
	for _, kt := range sp.KeyTypes {
		iss, err := s.current(ctx, p, sp, kt.Family(), id.Value)
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
			continue
		} else if err != nil {
			s.internal(w, r, "bud", err)
			return
		}
		if len(iss.KeyPEM) == 0 {
			continue // CSR mode: Bud cannot serve it
		}
		certs, keys = append(certs, string(iss.ChainPEM)), append(keys, string(iss.KeyPEM))
		reads = append(reads, certfleet.KeyRead{TokenID: p.token.ID, Spec: iss.Spec, KeyType: iss.KeyType, IssuanceID: iss.ID, Serial: iss.Serial})
	}
	if len(certs) == 0 {
		s.send(w, r, s.notFound(r, "no certificate with a key certfleet holds for %q yet", id.Value), p.urlCred)
		return
	}
	var body budReply
	if len(certs) == 1 {
		body = budReply{Cert: certs[0], Key: keys[0]}
	} else {
		body = budReply{Cert: certs, Key: keys}
	}
	rep := jsonReply(http.StatusOK, body)
	// Bud asks at every handshake: its reads are aggregated per key
	// version (keyreads.go), the second key's as the first's.
	for i := range reads[1:] {
		if prob := s.recordRepeatedRead(r, reply{keyRead: &reads[i+1], consumer: "bud"}); prob != nil {
			s.fail(w, r, p.urlCred, prob)
			return
		}
	}
	rep.keyRead, rep.consumer = &reads[0], "bud"
	s.send(w, r, rep, p.urlCred)
}

// budOCSP answers Bud's OCSP stapling lookup: a JSON 404 ({}), always,
// since CAs are retiring OCSP (Let's Encrypt ended it in 2025); Bud then
// staples nothing.
func (s *Server) budOCSP(w http.ResponseWriter, r *http.Request, p principal) {
	writeReply(w, r, reply{status: http.StatusNotFound, ctype: "application/json", body: []byte("{}\n")})
}

// getCertificate implements the contract of Caddy's get_certificate http
// module (caddytls.HTTPCertGetter): GET with ?server_name= (and
// signature_schemes, cipher_suites, local_ip); 200 with the PEM chain and
// the key in one body, 204 when certfleet does not manage the name (Caddy
// falls back to its own certificates). Any other status is an error to
// Caddy.
func (s *Server) getCertificate(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	id, err := certfleet.ParseIdentifier(q.Get("server_name"))
	if err != nil {
		s.fail(w, r, p.urlCred, problemf(certfleet.EINVALID, "server_name: %v", err))
		return
	}
	if !p.token.Covers(id.Value) {
		s.fail(w, r, p.urlCred, outOfScope(id.Value))
		return
	}
	ctx := r.Context()
	sp, prob, err := s.readable(ctx, p, id.Value, s.specCovering)
	if err != nil {
		s.internal(w, r, "get_certificate", err)
		return
	}
	if prob != nil {
		s.fail(w, r, p.urlCred, prob)
		return
	}
	if sp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	fam := ""
	if len(sp.KeyTypes) == 2 {
		fam = "rsa"
		if ecdsaOK(q.Get("signature_schemes")) || q.Get("signature_schemes") == "" {
			fam = "ecdsa"
		}
	}
	iss, err := s.current(ctx, p, sp, fam, id.Value)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
		w.WriteHeader(http.StatusNoContent) // not issued yet: Caddy falls back
		return
	} else if err != nil {
		s.internal(w, r, "get_certificate", err)
		return
	}
	if len(iss.KeyPEM) == 0 {
		w.WriteHeader(http.StatusNoContent) // CSR mode: the key is elsewhere
		return
	}
	// From memory: the current issuance is cached until a new one is
	// announced (currentID, issuance), its bundle by name and version.
	rep := reply{status: http.StatusOK, ctype: "application/x-pem-file", body: s.bundle(id.Value, iss),
		etag:     `"` + iss.Fingerprint[:24] + "-bundle" + `"`,
		keyRead:  &certfleet.KeyRead{TokenID: p.token.ID, Spec: iss.Spec, KeyType: iss.KeyType, IssuanceID: iss.ID, Serial: iss.Serial},
		consumer: "get_certificate"}
	s.send(w, r, rep, p.urlCred)
}

// ecdsaOK reports whether a client's signature schemes (Caddy sends them
// as comma-separated hex numbers, RFC 8446 §4.2.3) include an ECDSA one.
func ecdsaOK(schemes string) bool {
	for _, f := range strings.Split(schemes, ",") {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(f), "0x"), 16, 16)
		if err == nil && (n == 0x0403 || n == 0x0503 || n == 0x0603) {
			return true
		}
	}
	return false
}

var _ = json.Marshal
