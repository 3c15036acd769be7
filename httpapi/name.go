package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// NameRequest is the optional JSON body of PUT /v1/names/{hostname}: what
// a [[certificate]] of the config file can say, for a control panel.
// Unknown fields are refused.
type NameRequest struct {
	// Identifiers, when given, are every name of the certificate (DNS
	// names, wildcards, IP addresses; at most 100), {hostname} among
	// them: the certificate is the hostname's own, never packed. Default:
	// {hostname} alone (or, for a name that has its own certificate, the
	// names it has).
	Identifiers []string `json:"identifiers,omitempty"`
	// KeyTypes: one, or one RSA and one ECDSA (dual). Default: the
	// server's (ecdsa-p256).
	KeyTypes []string `json:"key_types,omitempty"`
	// Challenge: http-01, tls-alpn-01, dns-01 (wildcards) or webroot.
	// Default: the server's (http-01). A challenge this server cannot
	// answer is refused, saying what the operator must configure.
	Challenge string `json:"challenge,omitempty"`
	// DNSProvider names the [dns01.providers] entry that writes the TXT
	// records (dns-01). Default: the config's default provider.
	DNSProvider string `json:"dns_provider,omitempty"`
	// Webroot names a web root of the config's [webroots] (challenge
	// webroot; required with it).
	Webroot string `json:"webroot,omitempty"`
	// Profile is the ACME profile to request (e.g. "shortlived" at
	// Let's Encrypt). Default: the CA's.
	Profile string `json:"profile,omitempty"`
	// RenewBefore renews this long before expiry ("30d", "12h"), or
	// earlier when ARI says so. Default: automatic.
	RenewBefore string `json:"renew_before,omitempty"`
	// RenewAfter renews once the certificate is this old ("60d"), or
	// earlier by the other rules: renewal by age. Default: not by age.
	RenewAfter string `json:"renew_after,omitempty"`
	// ReuseKey keeps the private key across renewals. Default false.
	ReuseKey bool `json:"reuse_key,omitempty"`
	// Account: which ACME account orders (of the config, or declared at
	// runtime). Default: the tenant's, else the server's.
	Account string `json:"account,omitempty"`
	// Tenant: whose certificate it is. Only an operator's admin token
	// sets it; a tenant's token always requests for its own tenant.
	Tenant string `json:"tenant,omitempty"`
	// Group: names packed together share a group (with PackSize > 1).
	Group string `json:"group,omitempty"`
	// CSR: a PEM certificate request, for CSR mode (the host keeps the
	// key); same as POST /v1/names/{hostname}/csr.
	CSR string `json:"csr,omitempty"`
	// SelfTest false turns off the test before each order (for names
	// only the CA can reach, docs/readiness.md). Default true.
	SelfTest *bool `json:"self_test,omitempty"`
}

// outOfScope is the answer for a name the token may not act on: the same
// whether the name is outside the token's patterns, or its certificate
// holds names outside them or is another tenant's, so that it reveals
// nothing about the certificate.
func outOfScope(name string) *Problem {
	return problemf(codeForbidden, "this token does not cover %q", name)
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
		return id, outOfScope(id.Value)
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

var profileRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// request is a PUT or CSR as the server understands it: the spec wanted
// (its Name set by placeName), the tenant it is for, and whether its
// identifiers were given explicitly (then the certificate is the name's
// own).
type request struct {
	want     certfleet.CertificateSpec
	tenant   *certfleet.Tenant // nil: the operator's
	explicit bool
	group    string
}

// desiredSpec builds the spec a request asks for, but its Name and
// Identifiers: the settings, the tenant and the account.
func (s *Server) desiredSpec(ctx context.Context, p principal, req NameRequest) (request, *Problem) {
	sp := certfleet.CertificateSpec{
		KeyTypes: slices.Clone(s.Defaults.KeyTypes), Challenge: s.Defaults.Challenge,
		Account: s.Defaults.Account, Source: certfleet.SourceAPI, ReuseKey: req.ReuseKey,
		NoSelfTest: req.SelfTest != nil && !*req.SelfTest,
	}
	rq := request{group: req.Group}
	if len(req.KeyTypes) > 0 {
		sp.KeyTypes = nil
		for _, k := range req.KeyTypes {
			kt, err := certfleet.ParseKeyType(k)
			if err != nil {
				return rq, problemf(certfleet.EINVALID, "key_types: %v", err)
			}
			sp.KeyTypes = append(sp.KeyTypes, kt)
		}
	}
	if req.Challenge != "" {
		ct, err := certfleet.ParseChallengeType(req.Challenge)
		if err != nil {
			return rq, problemf(certfleet.EINVALID, "challenge: %v", err)
		}
		sp.Challenge = ct
	}
	sp.DNSProvider, sp.Webroot = req.DNSProvider, req.Webroot
	if sp.Challenge == certfleet.ChallengeWebroot && sp.Webroot == "" {
		return rq, problemf(certfleet.EINVALID, "challenge webroot: give webroot, the name of a web root of the config's [webroots]%s", s.offered(func(sv Solvers) []string { return sv.Webroots }))
	}
	if req.Profile != "" {
		if !profileRE.MatchString(req.Profile) {
			return rq, problemf(certfleet.EINVALID, "profile %q: use the name the CA gives its profile (letters, digits, '.', '_', '-')", req.Profile)
		}
		sp.Profile = req.Profile
	}
	if req.RenewBefore != "" {
		d, err := certfleet.ParseDuration(req.RenewBefore)
		if err != nil {
			return rq, problemf(certfleet.EINVALID, "renew_before: %v", err)
		}
		sp.RenewBefore = d
	}
	if req.RenewAfter != "" {
		d, err := certfleet.ParseDuration(req.RenewAfter)
		if err != nil {
			return rq, problemf(certfleet.EINVALID, "renew_after: %v", err)
		}
		sp.RenewAfter = d
	}
	tenant := p.token.Tenant
	if req.Tenant != "" && req.Tenant != tenant {
		if tenant != "" || !p.token.Has(certfleet.PermAdmin) {
			return rq, problemf(codeForbidden, "tenant: only an operator's admin token sets the tenant; a tenant's token requests for its own")
		}
		tenant = req.Tenant
	}
	if tenant != "" {
		t, err := s.Store.Tenant(ctx, tenant)
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
			return rq, problemf(certfleet.EINVALID, "tenant %q does not exist; create it first (PUT /v1/tenants/%s)", tenant, tenant)
		} else if err != nil {
			return rq, problemFor(err)
		}
		rq.tenant, sp.Tenant = &t, t.Name
		if req.Account != "" && req.Account != t.AccountName() {
			return rq, problemf(certfleet.EINVALID, "account: tenant %q orders with account %q; its certificates cannot use another (the operator changes the tenant's account)", t.Name, t.AccountName())
		}
		sp.Account = t.Account
	} else if req.Account != "" {
		sp.Account = req.Account
	}
	if sp.Account == certfleet.DefaultAccount {
		sp.Account = ""
	}
	if sp.Account != "" {
		if err := certfleet.ValidateAccountName(sp.Account); err != nil {
			return rq, problemf(certfleet.EINVALID, "account: %v", err)
		}
	}
	if s.Accounts != nil {
		if err := s.Accounts(ctx, sp.AccountName()); err != nil {
			return rq, problemFor(err)
		}
	}
	rq.want = sp
	return rq, nil
}

// checkScope checks that every name rq asks for is within the token's
// patterns and the tenant's: before anything is looked up, so that no
// answer tells about names outside them.
func checkScope(p principal, rq request) *Problem {
	for _, x := range rq.want.Identifiers {
		if !p.token.Covers(x.Value) {
			return outOfScope(x.Value)
		}
		if rq.tenant != nil && !rq.tenant.Covers(x.Value) {
			return problemf(codeForbidden, "tenant %q may not request %q: its names are %s (the operator changes them)", rq.tenant.Name, x.Value, strings.Join(rq.tenant.Names, ", "))
		}
	}
	return nil
}

// checkRequest checks what rq asks for, with its identifiers set: every
// name within the token's patterns and the tenant's, each provable by the
// challenge, and a challenge this server can answer.
func (s *Server) checkRequest(p principal, rq request) *Problem {
	if prob := checkScope(p, rq); prob != nil {
		return prob
	}
	for _, x := range rq.want.Identifiers {
		if err := rq.want.Challenge.CanProve(x); err != nil {
			return problemf(certfleet.EINVALID, "%v", err)
		}
	}
	v := rq.want
	v.Name = "requested" // placeName names it
	if err := v.Validate(); err != nil {
		return problemf(certfleet.EINVALID, "%v", strings.Replace(err.Error(), `certificate "requested": `, "", 1))
	}
	return s.checkSolvable(rq.want)
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
	rq, prob := s.desiredSpec(ctx, p, req)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	rq.want.Identifiers = []certfleet.Identifier{id}
	switch {
	case csrPEM != nil && len(req.Identifiers) > 0:
		s.fail(w, r, false, problemf(certfleet.EINVALID, "give identifiers or a CSR, not both: a CSR names its identifiers"))
		return
	case csrPEM != nil:
		csr, ids, kt, err := ParseCSR(csrPEM)
		if err != nil {
			s.fail(w, r, false, problemFor(err))
			return
		}
		if !slices.Contains(ids, id) {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "the CSR does not name %q", id.Value))
			return
		}
		rq.want.Identifiers, rq.want.KeyTypes, rq.explicit = ids, []certfleet.KeyType{kt}, true
		rq.want.CSR = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})
	case len(req.Identifiers) > 0:
		ids, err := certfleet.ParseIdentifiers(req.Identifiers)
		if err != nil {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "identifiers: %v", err))
			return
		}
		if !slices.Contains(ids, id) {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "identifiers: %q, the name requested, must be one of them", id.Value))
			return
		}
		rq.want.Identifiers, rq.explicit = ids, true
	}

	if prob := checkScope(p, rq); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	pl, prob, err := s.place(ctx, p, id, rq)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	var (
		event   *certfleet.Event // recorded by the store with the change
		others  certfleet.EventSinks
		created time.Time // the put created the certificate
	)
	if pl.write != nil {
		put := certfleet.SpecPut{Spec: *pl.write}
		inStore, rest := s.auditSinks()
		if inStore {
			e := s.requestEvent(r, p, specEvent(pl.name, id, rq.want, csrPEM != nil))
			put.Event, event, others = &e, &e, rest
		}
		res := s.groupCommit(ctx, pl.batch, put)
		s.unmarkPending(pl.names)
		s.index.forget(pl.names)
		pl.changed, created, err = res.Changed, res.CreatedAt, res.Err
	}
	if code := certfleet.ErrorCode(err); code == certfleet.EQUOTA || code == certfleet.ECONFLICT || code == certfleet.EINVALID {
		s.fail(w, r, false, problemFor(err))
		return
	} else if err != nil {
		s.internal(w, r, "request name", err)
		return
	}
	name := pl.name
	switch {
	case pl.changed && event != nil:
		if len(others) > 0 {
			s.record(r, others, *event)
		}
	case pl.changed:
		s.emit(r, p, specEvent(name, id, rq.want, csrPEM != nil))
	}
	if s.Wake != nil {
		s.Wake()
	}
	s.Changes.NotifySpec(name) // this certificate's long-polls; other names stay cached
	var st NameStatus
	switch {
	case pl.write != nil && !created.IsZero():
		// Created: its jobs are new and nothing else is kept of it yet,
		// as the store told; none of it need be read.
		sp := *pl.write
		sp.Disabled = false
		st, err = s.statusFrom(ctx, id.Value, sp, s.createdReads(sp, created))
	case pl.write != nil:
		// The spec as committed: it need not be read back.
		sp := *pl.write
		sp.Disabled = false
		st, err = s.specStatus(ctx, id.Value, sp)
	default:
		st, err = s.nameStatus(ctx, id.Value, name)
	}
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
	s.awaitAll() // decide on what is committed
	sp, err := s.freshSpecFor(ctx, id.Value)
	if err != nil {
		s.internal(w, r, "withdraw name", err)
		return
	}
	switch {
	case sp == nil || (p.token.Tenant != "" && sp.Tenant != p.token.Tenant):
		// Another tenant's name reads as one not requested.
		s.fail(w, r, false, problemf(certfleet.ENOTFOUND, "%q is not requested", id.Value))
		return
	case sp.Source != certfleet.SourceAPI:
		s.fail(w, r, false, problemf(certfleet.ECONFLICT, "%q is declared in the %s, not over the API: remove it there", id.Value, sp.Source))
		return
	}
	defer func() {
		s.index.forgetSpec(sp)
		if revoke {
			s.index.dropIssuances()
		}
		s.Changes.NotifySpec(sp.Name)
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
	if rv == nil && s.ResolveRevoker != nil {
		var err error
		if rv, err = s.ResolveRevoker(ctx, sp.AccountName()); err != nil && certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			return err
		}
	}
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
			return fmt.Errorf("revoke %s (serial %s): %w", sp.Name, certfleet.FormatSerial(iss.Serial), err)
		}
		s.Logger.Info("certificate revoked", certfleet.LogCertificate, sp.Name, certfleet.LogSerial, iss.Serial)
		record(certfleet.Event{Kind: certfleet.EventRevoked, Certificate: sp.Name, KeyType: iss.KeyType,
			Serial: iss.Serial, IssuanceID: iss.ID, Reason: "cessationOfOperation",
			Detail: fmt.Sprintf("revoked at the CA (account %s) on withdrawal over the API", sp.AccountName())})
	}
	return nil
}
