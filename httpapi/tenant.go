package httpapi

// Tenants, their tokens, and ACME accounts declared at runtime (issue 12):
// the operator's administration of a shared certfleet, for a control
// panel. Every route here needs an operator's admin token (dispatch
// refuses a tenant's), and every change is an audit event.

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/certfleet/certfleet"
)

// TenantRequest is the JSON body of PUT /v1/tenants/{tenant}: the whole
// tenant. Unknown fields are refused.
type TenantRequest struct {
	Description string `json:"description,omitempty"`
	// Names are the name patterns the tenant may request
	// ("example.org", "*.example.org"); they may not overlap another
	// tenant's.
	Names []string `json:"names"`
	// Account orders the tenant's certificates ("" = the shared default).
	Account string `json:"account,omitempty"`
	// MaxNames and OrdersPerWeek are its quotas; 0 is no limit.
	MaxNames      int `json:"max_names,omitempty"`
	OrdersPerWeek int `json:"orders_per_week,omitempty"`
}

// TenantUpdate is the JSON body of PATCH /v1/tenants/{tenant}: the fields
// given change, the others stay.
type TenantUpdate struct {
	Description   *string   `json:"description,omitempty"`
	Names         *[]string `json:"names,omitempty"`
	Account       *string   `json:"account,omitempty"`
	MaxNames      *int      `json:"max_names,omitempty"`
	OrdersPerWeek *int      `json:"orders_per_week,omitempty"`
}

// Apply changes t by u.
func (u TenantUpdate) Apply(t certfleet.Tenant) certfleet.Tenant {
	if u.Description != nil {
		t.Description = *u.Description
	}
	if u.Names != nil {
		t.Names = slices.Clone(*u.Names)
	}
	if u.Account != nil {
		t.Account = *u.Account
	}
	if u.MaxNames != nil {
		t.MaxNames = *u.MaxNames
	}
	if u.OrdersPerWeek != nil {
		t.OrdersPerWeek = *u.OrdersPerWeek
	}
	return t
}

// TenantInfo is a tenant with what it uses of its quotas.
type TenantInfo struct {
	certfleet.Tenant
	Usage certfleet.TenantUsage `json:"usage"`
}

// TenantList is GET /v1/tenants.
type TenantList struct {
	Tenants []TenantInfo `json:"tenants"`
}

// TokenRequest is the JSON body of POST /v1/tenants/{tenant}/tokens.
type TokenRequest struct {
	Description string `json:"description,omitempty"`
	// Names default to the tenant's patterns; each must be within them.
	Names []string `json:"names,omitempty"`
	// Permissions: read-certs, read-keys, request-names (never admin).
	Permissions []certfleet.Permission `json:"permissions"`
	// URLCredential makes a token for Bud and Caddy (reads only, in the
	// path, on the URL listener).
	URLCredential bool `json:"url_credential,omitempty"`
}

// TokenCreated is the answer to a token's creation: the token and its
// secret, shown this once (only its hash is stored).
type TokenCreated struct {
	certfleet.Token
	Secret string `json:"secret"`
}

// TokenList lists tokens, never their secrets.
type TokenList struct {
	Tokens []certfleet.Token `json:"tokens"`
}

// AccountRequest is the JSON body of PUT /v1/accounts/{account}.
type AccountRequest struct {
	// Directory is the CA's directory URL (https).
	Directory string `json:"directory"`
	Email     string `json:"email,omitempty"`
	// EABKeyID and EABHMACKey: External Account Binding, as the CA
	// issued them (both or neither). The MAC key is stored sealed and is
	// never shown again.
	EABKeyID   string `json:"eab_key_id,omitempty"`
	EABHMACKey string `json:"eab_hmac_key,omitempty"`
	// TrustedRoots is PEM: extra roots for the CA's own HTTPS.
	TrustedRoots string `json:"trusted_roots,omitempty"`
}

// AccountInfo is a declared account as the API shows it: no MAC key.
type AccountInfo struct {
	Name         string    `json:"name"`
	Directory    string    `json:"directory"`
	Email        string    `json:"email,omitempty"`
	EABKeyID     string    `json:"eab_key_id,omitempty"`
	TrustedRoots string    `json:"trusted_roots,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// AccountList is GET /v1/accounts.
type AccountList struct {
	// Config are the names of the config file's accounts ("default" is
	// [ca]); Declared are those declared at runtime.
	Config   []string      `json:"config"`
	Declared []AccountInfo `json:"declared"`
}

func accountInfo(a certfleet.AccountSettings) AccountInfo {
	return AccountInfo{Name: a.Name, Directory: a.Directory, Email: a.Email, EABKeyID: a.EABKeyID,
		TrustedRoots: string(a.TrustedRootsPEM), CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func (s *Server) tenantInfo(ctx context.Context, t certfleet.Tenant) (TenantInfo, error) {
	u, err := s.Store.TenantUsage(ctx, t.Name)
	return TenantInfo{Tenant: t, Usage: u}, err
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, p principal) {
	ts, err := s.Store.Tenants(r.Context())
	if err != nil {
		s.internal(w, r, "list tenants", err)
		return
	}
	list := TenantList{Tenants: []TenantInfo{}}
	for _, t := range ts {
		info, err := s.tenantInfo(r.Context(), t)
		if err != nil {
			s.internal(w, r, "list tenants", err)
			return
		}
		list.Tenants = append(list.Tenants, info)
	}
	writeReply(w, r, jsonReply(http.StatusOK, list))
}

// tenantOf loads the {tenant} of the path, sending the problem when it
// cannot.
func (s *Server) tenantOf(w http.ResponseWriter, r *http.Request) (certfleet.Tenant, bool) {
	t, err := s.Store.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		s.fail(w, r, false, problemFor(err))
		return t, false
	}
	return t, true
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request, p principal) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	info, err := s.tenantInfo(r.Context(), t)
	if err != nil {
		s.internal(w, r, "tenant", err)
		return
	}
	writeReply(w, r, jsonReply(http.StatusOK, info))
}

// storeTenant creates or replaces t after checking its account, records
// it, and answers with it.
func (s *Server) storeTenant(w http.ResponseWriter, r *http.Request, p principal, t certfleet.Tenant, create bool) {
	ctx := r.Context()
	if t.Account == certfleet.DefaultAccount {
		t.Account = ""
	}
	if err := t.Validate(); err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	if s.Accounts != nil {
		if err := s.Accounts(ctx, t.AccountName()); err != nil {
			s.fail(w, r, false, problemFor(err))
			return
		}
	}
	var err error
	status, reason := http.StatusOK, "changed"
	if create {
		t, err = s.Store.CreateTenant(ctx, t)
		status, reason = http.StatusCreated, "created"
	} else {
		t, err = s.Store.UpdateTenant(ctx, t)
	}
	if err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventTenant, Reason: reason, Detail: t.String()})
	info, err := s.tenantInfo(ctx, t)
	if err != nil {
		s.internal(w, r, "tenant", err)
		return
	}
	rep := jsonReply(status, info)
	rep.header = http.Header{"Location": {"/v1/tenants/" + t.Name}}
	writeReply(w, r, rep)
}

func (s *Server) putTenant(w http.ResponseWriter, r *http.Request, p principal) {
	var req TenantRequest
	if prob := decodeJSON(r, &req); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	name := r.PathValue("tenant")
	_, err := s.Store.Tenant(r.Context(), name)
	if err != nil && certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		s.internal(w, r, "tenant", err)
		return
	}
	t := certfleet.Tenant{Name: name, Description: req.Description, Names: req.Names, Account: req.Account,
		MaxNames: req.MaxNames, OrdersPerWeek: req.OrdersPerWeek}
	s.storeTenant(w, r, p, t, err != nil)
}

func (s *Server) patchTenant(w http.ResponseWriter, r *http.Request, p principal) {
	var u TenantUpdate
	if prob := decodeJSON(r, &u); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	s.storeTenant(w, r, p, u.Apply(t), false)
}

func (s *Server) deleteTenant(w http.ResponseWriter, r *http.Request, p principal) {
	withdraw := false
	if v := r.URL.Query().Get("withdraw"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "withdraw=%q: use true or false", v))
			return
		}
		withdraw = b
	}
	name := r.PathValue("tenant")
	res, err := s.Store.DeleteTenant(r.Context(), name, withdraw)
	if err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventTenant, Reason: "deleted", Detail: DeletionDetail(name, res)})
	s.index.forget(nil)
	s.index.dropIssuances()
	s.Changes.Notify()
	writeReply(w, r, jsonReply(http.StatusOK, res))
}

// DeletionDetail describes a tenant's deletion for the audit trail.
func DeletionDetail(name string, res certfleet.TenantDeletion) string {
	d := "tenant " + name + " deleted"
	if len(res.Withdrawn) > 0 {
		d += "; certificates withdrawn (archive kept, nothing revoked): " + joinMax(res.Withdrawn, 20)
	}
	if len(res.TokensRevoked) > 0 {
		d += "; tokens revoked: " + joinMax(res.TokensRevoked, 20)
	}
	return d
}

func joinMax(l []string, n int) string {
	out := ""
	for i, s := range l {
		if i == n {
			return out + ", … (" + strconv.Itoa(len(l)) + " in all)"
		}
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

func (s *Server) listTenantTokens(w http.ResponseWriter, r *http.Request, p principal) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	all, err := s.Store.Tokens(r.Context())
	if err != nil {
		s.internal(w, r, "list tokens", err)
		return
	}
	list := TokenList{Tokens: []certfleet.Token{}}
	for _, tok := range all {
		if tok.Tenant == t.Name {
			list.Tokens = append(list.Tokens, tok)
		}
	}
	writeReply(w, r, jsonReply(http.StatusOK, list))
}

func (s *Server) createTenantToken(w http.ResponseWriter, r *http.Request, p principal) {
	var req TokenRequest
	if prob := decodeJSON(r, &req); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	id, secret, hash := certfleet.NewTokenSecret()
	tok := certfleet.Token{ID: id, Description: req.Description, Names: req.Names, Permissions: req.Permissions,
		URLCredential: req.URLCredential, Tenant: t.Name, Hash: hash, CreatedAt: s.Now()}
	if len(tok.Names) == 0 {
		tok.Names = slices.Clone(t.Names)
	}
	if err := certfleet.ValidateToken(tok); err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	if err := certfleet.CheckTenantToken(tok, t); err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	if err := s.Store.CreateToken(r.Context(), tok); err != nil {
		s.internal(w, r, "create token", err)
		return
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventTokenCreated, Detail: tok.AuditDetail()})
	rep := jsonReply(http.StatusCreated, TokenCreated{Token: tok, Secret: secret})
	rep.etag = "" // never cache a secret
	writeReply(w, r, rep)
}

func (s *Server) revokeTenantToken(w http.ResponseWriter, r *http.Request, p principal) {
	ctx := r.Context()
	tok, err := s.Store.Token(ctx, r.PathValue("id"))
	if err == nil && tok.Tenant != r.PathValue("tenant") {
		err = errorf(certfleet.ENOTFOUND, "tenant %q has no token %q", r.PathValue("tenant"), r.PathValue("id"))
	}
	if err == nil {
		err = s.Store.RevokeToken(ctx, tok.ID, s.Now())
	}
	if err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventTokenRevoked, Detail: tok.AuditDetail()})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, p principal) {
	all, err := s.Store.AccountSettingsList(r.Context())
	if err != nil {
		s.internal(w, r, "list accounts", err)
		return
	}
	list := AccountList{Config: slices.Sorted(slices.Values(s.ConfigAccounts)), Declared: []AccountInfo{}}
	if list.Config == nil {
		list.Config = []string{}
	}
	for _, a := range all {
		list.Declared = append(list.Declared, accountInfo(a))
	}
	writeReply(w, r, jsonReply(http.StatusOK, list))
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, p principal) {
	a, err := s.Store.AccountSettings(r.Context(), r.PathValue("account"))
	if err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	writeReply(w, r, jsonReply(http.StatusOK, accountInfo(a)))
}

func (s *Server) putAccount(w http.ResponseWriter, r *http.Request, p principal) {
	var req AccountRequest
	if prob := decodeJSON(r, &req); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	name := r.PathValue("account")
	if slices.Contains(s.ConfigAccounts, name) || name == certfleet.DefaultAccount {
		s.fail(w, r, false, problemf(certfleet.ECONFLICT, "account %q is defined in the config file, which always wins; declare another name", name))
		return
	}
	a := certfleet.AccountSettings{Name: name, Directory: req.Directory, Email: req.Email, EABKeyID: req.EABKeyID,
		EABHMACKey: req.EABHMACKey, TrustedRootsPEM: []byte(req.TrustedRoots)}
	if req.TrustedRoots == "" {
		a.TrustedRootsPEM = nil
	} else if _, err := certfleet.ParseChain(a.TrustedRootsPEM); err != nil {
		s.fail(w, r, false, problemf(certfleet.EINVALID, "trusted_roots: %v", err))
		return
	}
	a, err := s.Store.PutAccountSettings(r.Context(), a)
	if err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	detail := "account " + a.Name + " declared at " + a.Directory
	if a.EABKeyID != "" {
		detail += " with EAB key ID " + a.EABKeyID
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventAccount, Reason: "declared", Detail: detail})
	writeReply(w, r, jsonReply(http.StatusOK, accountInfo(a)))
}

func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request, p principal) {
	name := r.PathValue("account")
	if err := s.Store.DeleteAccountSettings(r.Context(), name); err != nil {
		s.fail(w, r, false, problemFor(err))
		return
	}
	s.emit(r, p, certfleet.Event{Kind: certfleet.EventAccount, Reason: "deleted", Detail: "declared account " + name + " deleted"})
	w.WriteHeader(http.StatusNoContent)
}
