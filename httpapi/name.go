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
		event  *certfleet.Event // recorded by the store with the change
		others certfleet.EventSinks
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
		pl.changed, err = res.Changed, res.Err
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
	s.Changes.Notify()
	var st NameStatus
	if pl.write != nil {
		// The spec as committed: it need not be read back.
		sp := *pl.write
		sp.Disabled = false
		st, err = s.specStatus(ctx, id.Value, sp)
	} else {
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

// placement is what placeName decided.
type placement struct {
	name    string // the spec that serves the name
	changed bool   // the store changed (packing, or a store without batches)
	// write, if set, is the spec still to put, by group commit through
	// batch; names are the names it changes, pending until it is
	// committed.
	write *certfleet.CertificateSpec
	batch certfleet.SpecBatchWriter
	names []string
}

// place decides where the name goes (placeName). With a store that takes
// batches, decisions on different names run at once: the names a decision
// rests on are marked pending while it reads, and a decision that finds
// one already pending waits until it is committed. Packing, and stores
// without batches, decide and write under writeMu, one at a time.
func (s *Server) place(ctx context.Context, p principal, id certfleet.Identifier, rq request) (placement, *Problem, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, batches := s.Store.(certfleet.SpecBatchWriter)
	if !batches || (s.PackSize > 1 && !rq.explicit) {
		s.awaitAll() // packing reads and writes other names' specs
		return s.placeName(ctx, p, id, rq)
	}
	asked := append(certfleet.IdentifierValues(rq.want.Identifiers), id.Value)
	slices.Sort(asked)
	asked = slices.Compact(asked)
	for {
		s.awaitNames(asked)
		s.markPending(asked)
		s.writeMu.Unlock()
		pl, prob, err := s.placeName(ctx, p, id, rq)
		s.writeMu.Lock()
		if prob != nil || err != nil || pl.write == nil {
			s.unmarkPendingLocked(asked)
			return pl, prob, err
		}
		// The name's certificate may hold names beyond those asked for
		// (a PUT that keeps its names): they must not be pending either.
		extra := slices.DeleteFunc(slices.Clone(pl.names), func(n string) bool { return slices.Contains(asked, n) })
		if s.anyPending(extra) {
			s.unmarkPendingLocked(asked)
			s.awaitNames(extra)
			continue
		}
		s.markPending(extra)
		pl.names = append(asked, extra...)
		return pl, nil, nil
	}
}

// placeName puts the name into a spec, by the lumping policy, or leaves
// the spec to write to the caller's group commit (placement.write); a
// problem is the caller's to send. Called by place: with writeMu held, or
// with the names it decides on pending.
func (s *Server) placeName(ctx context.Context, p principal, id certfleet.Identifier, rq request) (placement, *Problem, error) {
	want := rq.want
	cur, err := s.freshSpecFor(ctx, id.Value)
	if err != nil {
		return placement{}, nil, err
	}
	// A name is one owner's: a tenant never takes over, or joins, a
	// certificate of another tenant or of the operator. (Tenants' patterns
	// never overlap: only the operator's names can be in the way.)
	for _, x := range want.Identifiers {
		holder := cur
		if x != id {
			if holder, err = s.specFor(ctx, x.Value); err != nil {
				return placement{}, nil, err
			}
		}
		if holder != nil && holder.Tenant != want.Tenant {
			return placement{}, problemf(certfleet.ECONFLICT, "%q is already managed by certfleet for another owner; ask the operator", x.Value), nil
		}
		if rq.explicit && holder != nil && holder.Name != specName(id.Value) {
			return placement{}, problemf(certfleet.ECONFLICT, "%q is already in certificate %q: withdraw it there first (DELETE /v1/names/%s), then request it here", x.Value, holder.Name, x.Value), nil
		}
	}
	own := cur != nil && cur.Name == specName(id.Value) && cur.Source == certfleet.SourceAPI
	if !rq.explicit && own {
		// A PUT without identifiers on a name with its own certificate
		// changes its settings and keeps its names (and its CSR).
		want.Identifiers = cur.Identifiers
		if len(cur.CSR) > 0 {
			want.CSR, want.KeyTypes = cur.CSR, cur.KeyTypes
		}
	}
	if !rq.explicit && !own && cur != nil {
		// Declared in the config file, or packed with others already.
		if !p.token.MayRead(*cur) {
			return placement{}, outOfScope(id.Value), nil
		}
		return placement{name: cur.Name}, nil, nil
	}
	rq.want = want
	if prob := s.checkRequest(p, rq); prob != nil {
		return placement{}, prob, nil
	}
	// The names whose spec this changes are looked up again (the store
	// tells every instance too; this is for our own next request).
	defer s.index.forget(certfleet.IdentifierValues(want.Identifiers))
	defer s.index.forgetSpec(cur)
	if s.PackSize <= 1 || rq.explicit || own {
		want.Name = specName(id.Value)
		if bw, ok := s.Store.(certfleet.SpecBatchWriter); ok {
			names := certfleet.IdentifierValues(want.Identifiers)
			if cur != nil {
				names = append(names, certfleet.IdentifierValues(cur.Identifiers)...)
			}
			slices.Sort(names)
			return placement{name: want.Name, write: &want, batch: bw, names: slices.Compact(names)}, nil, nil
		}
		changed, err := s.Store.PutSpec(ctx, want)
		return placement{name: want.Name, changed: changed}, nil, err
	}
	name, err := s.pack(ctx, p, id, want, rq.group)
	return placement{name: name, changed: err == nil}, nil, err
}

// packPrefix names the packs of one kind. A pack never crosses a tenant,
// an account, a challenge or any setting of its certificate (key types,
// profile, DNS provider, web root, renewal policy), nor a group; nor the
// token pattern that covers the name (scope), so that every token that
// requested a name of a pack covers all of its names and may read it
// (Token.MayRead): two customers never share a key.
func packPrefix(sp certfleet.CertificateSpec, group, scope string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%v|%s|%s|%s", sp.AccountName(), sp.KeyTypes, sp.Challenge, sp.Profile, group)
	if sp.Tenant != "" || sp.DNSProvider != "" || sp.Webroot != "" || sp.RenewBefore != 0 || sp.ReuseKey || scope != "*" {
		// Only then, so that the packs made before tenants keep their
		// names.
		fmt.Fprintf(h, "|tenant=%s|dns=%s|webroot=%s|renew=%s|reuse=%v|scope=%s", sp.Tenant, sp.DNSProvider, sp.Webroot, sp.RenewBefore, sp.ReuseKey, scope)
	}
	if sp.RenewAfter != 0 {
		fmt.Fprintf(h, "|renew_after=%s", sp.RenewAfter) // likewise
	}
	return "pack-" + hex.EncodeToString(h.Sum(nil))[:12] + "-"
}

// scopeOf returns the pattern of the token that covers name: the first
// one listed ("*" for an operator's token for everything).
func scopeOf(t certfleet.Token, name string) string {
	for _, p := range t.Names {
		if certfleet.MatchNamePattern(p, name) {
			return strings.ToLower(p)
		}
	}
	return ""
}

// pack adds id to the first pack of its kind with room, or to a new one.
// Only that pack's certificate is re-issued.
func (s *Server) pack(ctx context.Context, p principal, id certfleet.Identifier, want certfleet.CertificateSpec, group string) (string, error) {
	prefix := packPrefix(want, group, scopeOf(p.token, id.Value))
	// The packs of this kind only (an index range), not every spec.
	specs, err := s.Store.Specs(ctx, certfleet.SpecFilter{Source: certfleet.SourceAPI, Tenant: want.Tenant, Prefix: prefix, IncludeDisabled: true})
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
		if sp.Disabled || sp.Tenant != want.Tenant || len(sp.Identifiers) >= min(s.PackSize, certfleet.MaxIdentifiers) {
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

func (s *Server) retry(w http.ResponseWriter, r *http.Request, p principal) {
	ctx := r.Context()
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	sp, prob, err := s.readable(ctx, p, id.Value, s.specFor)
	if err != nil {
		s.internal(w, r, "retry", err)
		return
	}
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	if sp == nil {
		s.fail(w, r, false, problemf(certfleet.ENOTFOUND, "%q is not managed", id.Value))
		return
	}
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "force=%q: use true or false", v))
			return
		}
		force = b
	}
	acts, prob, err := s.retryJobs(ctx, sp, force)
	if err != nil {
		s.internal(w, r, "retry", err)
		return
	}
	var said []string
	for _, a := range acts {
		said = append(said, string(a.KeyType)+": "+a.Reason)
	}
	if prob != nil {
		// Nothing to order: say so, and how to renew anyway, rather
		// than a 202 that does nothing (issue 15, finding 6).
		s.emit(r, p, certfleet.Event{Kind: certfleet.EventRetry, Certificate: sp.Name,
			Detail: "POST " + id.Value + "/retry: not due, nothing ordered (" + strings.Join(said, "; ") + ")"})
		prob.Detail = fmt.Sprintf("nothing to retry: %s (certificate %s) is valid and not due for renewal (%s); nothing was ordered. "+
			"To renew now anyway, POST %s?force=true", id.Value, sp.Name, strings.Join(said, "; "), r.URL.Path)
		s.fail(w, r, false, prob)
		return
	}
	verb := "ordering now"
	if force {
		verb = "renewal forced, ordering now"
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventRetry, Certificate: sp.Name, Detail: "POST " + id.Value + "/retry: " + verb + " (" + strings.Join(said, "; ") + ")"})
	if s.Wake != nil {
		s.Wake()
	}
	st, err := s.nameStatus(ctx, id.Value, sp.Name)
	if err != nil {
		s.internal(w, r, "status", err)
		return
	}
	st.Retry = acts
	rep := jsonReply(http.StatusAccepted, st)
	rep.header = http.Header{"Location": {st.StatusURL}}
	writeReply(w, r, rep)
}

// Retry actions (RetryAction.Action).
const (
	RetryOrdering = "ordering" // due: the scheduler orders at once
	RetryForced   = "forced"   // not due, renewed anyway (force=true)
	RetryRetest   = "retest"   // names wait for their self-test: re-tested now
	RetryNotDue   = "not_due"  // valid and not due: nothing ordered
)

// retryJobs does what a retry of sp does to each of its jobs (issue 15,
// finding 6): one that is due (certfleet.RetryOf) is made due now; with
// force every one is renewed (JobStore.RenewNow); while names wait for
// their self-test they are re-tested; otherwise nothing is done, and the
// answer says why. prob is set when nothing at all is done.
func (s *Server) retryJobs(ctx context.Context, sp *certfleet.CertificateSpec, force bool) ([]RetryAction, *Problem, error) {
	waiting, err := s.Store.WaitingNames(ctx, certfleet.WaitingFilter{Spec: sp.Name})
	if err != nil {
		return nil, nil, err
	}
	now := s.Now()
	var acts []RetryAction
	acted := false
	for _, k := range sp.JobKeys() {
		job, err := s.Store.Job(ctx, k)
		if err != nil {
			return nil, nil, err
		}
		var cur *certfleet.Issuance
		if job.CurrentID != 0 {
			if cur, err = s.issuance(ctx, job.CurrentID); err != nil {
				return nil, nil, err
			}
		}
		rt := certfleet.RetryOf(*sp, job, cur, now)
		a := RetryAction{KeyType: k.KeyType, ValidUntil: rt.ValidUntil, RenewalAt: rt.RenewalAt}
		switch {
		case force:
			a.Action, a.Reason = RetryForced, "renewal forced (force=true): a new certificate is ordered now"
			err = s.Store.RenewNow(ctx, k)
		case rt.Due != "":
			a.Action, a.Reason = RetryOrdering, rt.Due+": ordered now"
			err = s.Store.RetryNow(ctx, k)
		case len(waiting) > 0:
			a.Action = RetryRetest
			a.Reason = fmt.Sprintf("%d name(s) wait for their self-test (%s: %s): re-tested now, ordered once they pass",
				len(waiting), waiting[0].Identifier.Value, waiting[0].Reason)
			err = s.Store.RetryNow(ctx, k) // re-tests the waiting names (JobStore.RetryNow)
		default:
			a.Action = RetryNotDue
			a.Reason = fmt.Sprintf("valid until %s, renewal due at %s", rt.ValidUntil.UTC().Format(time.RFC3339), rt.RenewalAt.UTC().Format(time.RFC3339))
		}
		if err != nil {
			return nil, nil, err
		}
		acted = acted || a.Action != RetryNotDue
		acts = append(acts, a)
	}
	if !acted {
		return acts, problemf(certfleet.ECONFLICT, "not due"), nil
	}
	return acts, nil, nil
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
