package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// NameRequest is the optional JSON body of PUT /v1/names/{hostname}.
// Unknown fields are refused.
type NameRequest struct {
	// KeyTypes: one, or one RSA and one ECDSA (dual). Default: the
	// server's (ecdsa-p256).
	KeyTypes []string `json:"key_types,omitempty"`
	// Challenge: http-01, tls-alpn-01, dns-01 (wildcards). Default: the
	// server's (http-01).
	Challenge string `json:"challenge,omitempty"`
	// Account: which configured ACME account orders. Default: the server's.
	Account string `json:"account,omitempty"`
	// Group: names packed together share a group (with PackSize > 1).
	Group string `json:"group,omitempty"`
	// CSR: a PEM certificate request, for CSR mode (the host keeps the
	// key); same as POST /v1/names/{hostname}/csr.
	CSR string `json:"csr,omitempty"`
}

// parseHostname reads and normalises {hostname} and checks the caller's
// scope. The scope check comes before any lookup, so a 403 tells nothing
// about whether the name exists.
func (s *Server) parseHostname(r *http.Request, p principal) (certfleet.Identifier, *Problem) {
	id, err := certfleet.ParseIdentifier(r.PathValue("hostname"))
	if err != nil {
		return id, problemf(certfleet.EINVALID, "%v", err)
	}
	if !p.token.Covers(id.Value) {
		return id, problemf(codeForbidden, "this token does not cover %q", id.Value)
	}
	return id, nil
}

// decodeJSON decodes a JSON body strictly: one object, no unknown fields.
// An empty body leaves v as it is.
func decodeJSON(r *http.Request, v any) *Problem {
	body, prob := readBody(r)
	if prob != nil {
		return prob
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return problemf(codeUnsupportedType, "send the body as application/json, not %q", ct)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problemf(certfleet.EINVALID, "body: %v", err)
	}
	if dec.More() {
		return problemf(certfleet.EINVALID, "body: one JSON object expected, found more")
	}
	return nil
}

// desiredSpec builds the spec a request asks for (its Name and Identifiers
// are set by the caller).
func (s *Server) desiredSpec(req NameRequest) (certfleet.CertificateSpec, *Problem) {
	sp := certfleet.CertificateSpec{
		KeyTypes: slices.Clone(s.Defaults.KeyTypes), Challenge: s.Defaults.Challenge,
		Account: s.Defaults.Account, Source: certfleet.SourceAPI,
	}
	if len(req.KeyTypes) > 0 {
		sp.KeyTypes = nil
		for _, k := range req.KeyTypes {
			kt, err := certfleet.ParseKeyType(k)
			if err != nil {
				return sp, problemf(certfleet.EINVALID, "key_types: %v", err)
			}
			sp.KeyTypes = append(sp.KeyTypes, kt)
		}
	}
	if req.Challenge != "" {
		ct, err := certfleet.ParseChallengeType(req.Challenge)
		if err != nil {
			return sp, problemf(certfleet.EINVALID, "challenge: %v", err)
		}
		if ct == certfleet.ChallengeWebroot {
			return sp, problemf(certfleet.EINVALID, "challenge: webroot needs a web root from the config file; use http-01")
		}
		sp.Challenge = ct
	}
	if req.Account != "" {
		if err := certfleet.ValidateName(req.Account); err != nil {
			return sp, problemf(certfleet.EINVALID, "account: %v", err)
		}
		sp.Account = req.Account
	}
	if sp.Account == certfleet.DefaultAccount {
		sp.Account = ""
	}
	return sp, nil
}

func (s *Server) putName(w http.ResponseWriter, r *http.Request, p principal) {
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	var req NameRequest
	if prob := decodeJSON(r, &req); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	var csr []byte
	if req.CSR != "" {
		csr = []byte(req.CSR)
	}
	s.requestName(w, r, p, id, req, csr)
}

// requestName declares the wish for id (and, in CSR mode, the CSR's other
// names) and answers with the status: 200 when every key type has a
// certificate, else 202.
func (s *Server) requestName(w http.ResponseWriter, r *http.Request, p principal, id certfleet.Identifier, req NameRequest, csrPEM []byte) {
	ctx := r.Context()
	want, prob := s.desiredSpec(req)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	want.Identifiers = []certfleet.Identifier{id}
	if csrPEM != nil {
		csr, ids, kt, err := ParseCSR(csrPEM)
		if err != nil {
			s.fail(w, r, false, problemFor(err))
			return
		}
		if !slices.Contains(ids, id) {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "the CSR does not name %q", id.Value))
			return
		}
		for _, other := range ids {
			if !p.token.Covers(other.Value) {
				s.fail(w, r, false, problemf(codeForbidden, "the CSR names %q, which this token does not cover", other.Value))
				return
			}
		}
		want.Identifiers, want.KeyTypes = ids, []certfleet.KeyType{kt}
		want.CSR = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})
	}
	for _, x := range want.Identifiers {
		if err := want.Challenge.CanProve(x); err != nil {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "%v", err))
			return
		}
	}

	s.writeMu.Lock()
	name, changed, err := s.placeName(ctx, id, want, req.Group)
	s.writeMu.Unlock()
	if err != nil {
		s.internal(w, r, "request name", err)
		return
	}
	if changed {
		s.emit(r, p, specEvent(name, id, want, csrPEM != nil))
	}
	s.index.invalidate()
	if s.Wake != nil {
		s.Wake()
	}
	s.Changes.Notify()
	st, err := s.nameStatus(ctx, id.Value, name)
	if err != nil {
		s.internal(w, r, "status", err)
		return
	}
	rep := jsonReply(http.StatusOK, st)
	if !st.Issued {
		rep.status = http.StatusAccepted
	}
	rep.header = http.Header{"Location": {st.StatusURL}}
	writeReply(w, r, rep)
}

// placeName puts the name into a spec, by the lumping policy, and returns
// the spec's name and whether the store changed. Called with writeMu held.
func (s *Server) placeName(ctx context.Context, id certfleet.Identifier, want certfleet.CertificateSpec, group string) (string, bool, error) {
	cur, err := s.freshSpecFor(ctx, id.Value)
	if err != nil {
		return "", false, err
	}
	if cur != nil && cur.Source != certfleet.SourceAPI {
		return cur.Name, false, nil // the config file already declares it
	}
	if cur != nil && len(cur.Identifiers) > 1 && len(want.CSR) == 0 {
		return cur.Name, false, nil // packed with others already
	}
	if s.PackSize <= 1 || len(want.CSR) > 0 || (cur != nil && cur.Name == specName(id.Value)) {
		if cur != nil && len(want.CSR) == 0 && len(cur.CSR) > 0 {
			// A PUT without a CSR on a CSR-mode name keeps the CSR.
			want.CSR, want.KeyTypes, want.Identifiers = cur.CSR, cur.KeyTypes, cur.Identifiers
		}
		want.Name = specName(id.Value)
		changed, err := s.Store.PutSpec(ctx, want)
		if err != nil {
			return "", false, err
		}
		return want.Name, changed, nil
	}
	name, err := s.pack(ctx, id, want, group)
	return name, err == nil, err
}

// freshSpecFor is specFor on a just-rebuilt index.
func (s *Server) freshSpecFor(ctx context.Context, name string) (*certfleet.CertificateSpec, error) {
	s.index.invalidate()
	return s.specFor(ctx, name)
}

// packPrefix names the packs of one kind: same account, key types,
// challenge, profile and group.
func packPrefix(sp certfleet.CertificateSpec, group string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%v|%s|%s|%s", sp.AccountName(), sp.KeyTypes, sp.Challenge, sp.Profile, group)
	return "pack-" + hex.EncodeToString(h.Sum(nil))[:12] + "-"
}

// pack adds id to the first pack of its kind with room, or to a new one.
// Only that pack's certificate is re-issued.
func (s *Server) pack(ctx context.Context, id certfleet.Identifier, want certfleet.CertificateSpec, group string) (string, error) {
	prefix := packPrefix(want, group)
	specs, err := s.Store.Specs(ctx, certfleet.SpecFilter{Source: certfleet.SourceAPI, IncludeDisabled: true})
	if err != nil {
		return "", err
	}
	next := 1
	for _, sp := range specs {
		rest, ok := strings.CutPrefix(sp.Name, prefix)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= next {
			next = n + 1
		}
		if sp.Disabled || len(sp.Identifiers) >= min(s.PackSize, certfleet.MaxIdentifiers) {
			continue
		}
		sp.Identifiers = append(sp.Identifiers, id)
		if _, err := s.Store.PutSpec(ctx, sp); err != nil {
			return "", err
		}
		return sp.Name, nil
	}
	want.Name = fmt.Sprintf("%s%d", prefix, next)
	if _, err := s.Store.PutSpec(ctx, want); err != nil {
		return "", err
	}
	return want.Name, nil
}

func (s *Server) deleteName(w http.ResponseWriter, r *http.Request, p principal) {
	ctx := r.Context()
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	revoke := false
	if v := r.URL.Query().Get("revoke"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "revoke=%q: use true or false", v))
			return
		}
		revoke = b
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	sp, err := s.freshSpecFor(ctx, id.Value)
	if err != nil {
		s.internal(w, r, "withdraw name", err)
		return
	}
	switch {
	case sp == nil:
		s.fail(w, r, false, problemf(certfleet.ENOTFOUND, "%q is not requested", id.Value))
		return
	case sp.Source != certfleet.SourceAPI:
		s.fail(w, r, false, problemf(certfleet.ECONFLICT, "%q is declared in the %s, not over the API: remove it there", id.Value, sp.Source))
		return
	}
	defer func() {
		s.index.invalidate()
		s.Changes.Notify()
	}()
	if len(sp.Identifiers) > 1 && len(sp.CSR) == 0 {
		if revoke {
			s.fail(w, r, false, problemf(certfleet.ECONFLICT,
				"%q shares certificate %q with other names, so it cannot be revoked; withdraw without revoke (the re-issued certificate no longer holds it)", id.Value, sp.Name))
			return
		}
		sp.Identifiers = slices.DeleteFunc(slices.Clone(sp.Identifiers), func(x certfleet.Identifier) bool { return x == id })
		if _, err := s.Store.PutSpec(ctx, *sp); err != nil {
			s.internal(w, r, "withdraw name from pack", err)
			return
		}
		s.emit(r, p, certfleet.Event{Kind: certfleet.EventSpecChanged, Certificate: sp.Name, Reason: "name_removed",
			Detail: fmt.Sprintf("DELETE %s: removed from %s, which keeps %s", id.Value, sp.Name, strings.Join(certfleet.IdentifierValues(sp.Identifiers), ", "))})
		if s.Wake != nil {
			s.Wake()
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if revoke {
		if err := s.revokeAll(ctx, *sp, func(e certfleet.Event) { s.emit(r, p, e) }); err != nil {
			s.internal(w, r, "revoke", err)
			return
		}
	}
	if err := s.Store.WithdrawSpec(ctx, sp.Name, revoke); err != nil {
		s.internal(w, r, "withdraw name", err)
		return
	}
	detail := "DELETE " + id.Value + ": withdrawn; its archive stays"
	if revoke {
		detail = "DELETE " + id.Value + "?revoke=true: withdrawn, certificates revoked, private keys destroyed"
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventSpecChanged, Certificate: sp.Name, Reason: "withdrawn", Detail: detail})
	w.WriteHeader(http.StatusNoContent)
}

// revokeAll revokes every unexpired certificate of the spec at the CA,
// handing record the revoked event of each.
func (s *Server) revokeAll(ctx context.Context, sp certfleet.CertificateSpec, record func(certfleet.Event)) error {
	rv := s.Revokers[sp.AccountName()]
	if rv == nil {
		return errorf(certfleet.ECONFLICT, "account %q cannot revoke (no revoker configured)", sp.AccountName())
	}
	all, err := s.Store.Issuances(ctx, certfleet.IssuanceFilter{Spec: sp.Name})
	if err != nil {
		return err
	}
	for _, iss := range all {
		if !iss.NotAfter.After(s.Now()) {
			continue
		}
		leaf, err := iss.Leaf()
		if err != nil {
			return err
		}
		if err := rv.Revoke(ctx, leaf, certfleet.ReasonCessationOfOperation); err != nil {
			return fmt.Errorf("revoke %s (serial %s): %w", sp.Name, iss.Serial, err)
		}
		s.Logger.Info("certificate revoked", certfleet.LogCertificate, sp.Name, certfleet.LogSerial, iss.Serial)
		record(certfleet.Event{Kind: certfleet.EventRevoked, Certificate: sp.Name, KeyType: iss.KeyType,
			Serial: iss.Serial, IssuanceID: iss.ID, Reason: "cessationOfOperation",
			Detail: fmt.Sprintf("revoked at the CA (account %s) on withdrawal over the API", sp.AccountName())})
	}
	return nil
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request, p principal) {
	ctx := r.Context()
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	sp, err := s.specFor(ctx, id.Value)
	if err != nil {
		s.internal(w, r, "retry", err)
		return
	}
	if sp == nil {
		s.fail(w, r, false, problemf(certfleet.ENOTFOUND, "%q is not managed", id.Value))
		return
	}
	for _, k := range sp.JobKeys() {
		if err := s.Store.RetryNow(ctx, k); err != nil {
			s.internal(w, r, "retry", err)
			return
		}
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventRetry, Certificate: sp.Name, Detail: "POST " + id.Value + "/retry: due now"})
	if s.Wake != nil {
		s.Wake()
	}
	st, err := s.nameStatus(ctx, id.Value, sp.Name)
	if err != nil {
		s.internal(w, r, "status", err)
		return
	}
	rep := jsonReply(http.StatusAccepted, st)
	rep.header = http.Header{"Location": {st.StatusURL}}
	writeReply(w, r, rep)
}

func (s *Server) postCSR(w http.ResponseWriter, r *http.Request, p principal) {
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	var req NameRequest
	body, prob := readBody(r)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		r.Body = http.NoBody
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "body: %v", err))
			return
		}
	} else {
		req.CSR = string(body) // application/pkcs10 (PEM) or text
	}
	if strings.TrimSpace(req.CSR) == "" {
		s.fail(w, r, false, problemf(certfleet.EINVALID, "send a PEM certificate request as the body"))
		return
	}
	s.requestName(w, r, p, id, req, []byte(req.CSR))
}

// ParseCSR checks a PEM (or DER) certificate request for CSR mode: its
// signature, its names (DNS names and IP addresses only, each valid,
// normalised, none twice, at most certfleet.MaxIdentifiers; a subject
// common name must be one of them) and its key (a type certfleet issues
// for). Errors are EINVALID and say what is wrong.
func ParseCSR(data []byte) (*x509.CertificateRequest, []certfleet.Identifier, certfleet.KeyType, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, nil, "", errorf(certfleet.EINVALID, "CSR: PEM block is %q, not CERTIFICATE REQUEST", block.Type)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: not a valid certificate request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: bad signature: %v", err)
	}
	kt, err := certfleet.KeyTypeOf(csr.PublicKey)
	if err != nil {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: %v", err)
	}
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: only DNS names and IP addresses can be certified, not e-mail addresses or URIs")
	}
	values := slices.Clone(csr.DNSNames)
	for _, ip := range csr.IPAddresses {
		values = append(values, ip.String())
	}
	ids, err := certfleet.ParseIdentifiers(values)
	if err != nil {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: %v", err)
	}
	for i, id := range ids {
		if id.Type == certfleet.IdentifierDNS && id.Value != values[i] {
			return nil, nil, "", errorf(certfleet.EINVALID, "CSR: name %q must be written in its normalised form %q", values[i], id.Value)
		}
	}
	if cn := csr.Subject.CommonName; cn != "" {
		cid, err := certfleet.ParseIdentifier(cn)
		if err != nil || !slices.Contains(ids, cid) {
			return nil, nil, "", errorf(certfleet.EINVALID, "CSR: the common name %q is not among its subject alternative names", cn)
		}
	}
	return csr, ids, kt, nil
}

var _ = net.IP{}
var _ = time.Second
