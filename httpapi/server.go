// Package httpapi is certfleet's HTTP API: hosts, control panels and TLS
// terminators request names, fetch certificates, chains and keys, and read
// the renewal status over HTTP, with scoped bearer tokens. It also answers
// the lookups of the Bud TLS terminator (SNI backend) and of Caddy's
// get_certificate http module, which carry their credential in the URL, on a
// handler meant for a separate, private listener.
//
// Every read is decided by one rule, certfleet.Token.MayRead; tenants, their
// tokens and ACME accounts declared at runtime are administered under
// /v1/tenants and /v1/accounts.
//
// Server is the http.Handler; Client is the Go client (the agent uses it).
// Every error is an RFC 9457 problem document. Requests are asynchronous: a
// PUT declares the wish for a name and returns at once; clients long-poll
// (?wait=30s, with If-None-Match) until the certificate exists.
//
// It does not issue certificates: it writes specs into the store and wakes
// the manager, which does. It does not render the operator dashboard beyond
// a plain status page. On a TLS listener it authenticates hosts by their
// client certificate when the daemon sets Identities (host identities,
// package identity): such a request's principal is the identity, and
// /v1/identities/enroll and /renew hand hosts their certificates.
package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet"
)

// Defaults of Server's zero fields.
const (
	// DefaultMaxWait caps ?wait=: proxies commonly cut idle requests
	// after 60 s.
	DefaultMaxWait = 55 * time.Second
	// DefaultPollInterval is how often a long-poll re-reads the store when
	// no in-process change wakes it (another instance's work, failures).
	DefaultPollInterval = time.Second
	// DefaultIndexTTL bounds how stale the name index may get when specs
	// change elsewhere (the config file at start, another instance).
	DefaultIndexTTL = 2 * time.Second
	// MaxBodyBytes bounds request bodies: a CSR with 100 names and a
	// 4096-bit key is under 16 KiB.
	MaxBodyBytes = 64 << 10
	// DefaultPageSize and MaxPageSize page GET /v1/certificates.
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Store is what the Server needs of the store.
type Store interface {
	certfleet.Store
	certfleet.TokenStore
	certfleet.SpecWriter
	certfleet.TenantStore
}

// Server serves the API. Set the fields, then use Handler and URLHandler.
// Fields must not change after the first request.
type Server struct {
	// Store is required.
	Store Store
	// Changes, when set, wakes long-polls at once when the manager issues
	// a certificate (cmd wires the manager's deployer to it), and tells the
	// cache of jobs' current certificates which certificate changed
	// (NotifySpec; Notify drops the whole cache).
	Changes *certfleet.Changes
	// Wake, when set, is called after a name is requested or retried, so
	// the scheduler looks at the store at once (manager.Manager.Wake).
	Wake func()
	// Revokers revoke certificates at the CA, by account name, for
	// DELETE ?revoke=true. An account without one answers 409.
	Revokers map[string]certfleet.Revoker
	// ResolveRevoker, if set, returns the revoker of an account Revokers
	// lacks (declared at runtime).
	ResolveRevoker func(ctx context.Context, account string) (certfleet.Revoker, error)
	// Accounts, if set, checks that an account name can order (the
	// config's, or declared at runtime), with an error to send
	// (EINVALID) when it cannot. Nil accepts every name.
	Accounts func(ctx context.Context, name string) error
	// ConfigAccounts are the names of the config's accounts: an account
	// declared at runtime may not take one (PUT /v1/accounts).
	ConfigAccounts []string
	// Solvers, if set, says which challenges this certfleet can answer
	// now; a request that none can serve is refused with a problem
	// saying what the operator must configure, instead of failing at the
	// CA. Nil accepts every challenge.
	Solvers func() Solvers
	// Defaults fills what a PUT body leaves out.
	Defaults NameDefaults
	// PackSize is the lumping policy: 0 or 1 gives each requested name its
	// own certificate; N > 1 packs up to N names of the same account, key
	// types, challenge and group into one certificate.
	PackSize int
	// MaxWait caps ?wait=; default DefaultMaxWait.
	MaxWait time.Duration
	// PollInterval: see DefaultPollInterval.
	PollInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives request errors and key reads; nil discards.
	Logger *slog.Logger
	// Events, when set, receives the audit events of API requests that
	// change something (names, CSRs, retries, revocations, agent deploys);
	// see audit.go. Key reads are recorded by the store itself.
	Events certfleet.EventSink
	// Identities, when set, authenticates requests that come with a TLS
	// client certificate and no Authorization header (host identities,
	// issue 17), and serves enrollment and renewal; nil refuses both.
	Identities Identities
	// RequireClientCertForKeys refuses bearer tokens on the main handler
	// for reads of private keys: only a host identity's client
	// certificate may read one there. URL credentials (Bud, Caddy) are
	// not affected: they have their own listener.
	RequireClientCertForKeys bool
	// OnAgentReport, if set, is called with every agent report once it is
	// stored: every check-in, where Events gets only changes. Metrics
	// count check-ins with it. It must return quickly.
	OnAgentReport func(certfleet.AgentReport)
	// KeyReadInterval aggregates the key reads of handshake-driven
	// consumers (Caddy's get_certificate, Bud): see keyreads.go. Default
	// DefaultKeyReadInterval; negative records every read.
	KeyReadInterval time.Duration

	once        sync.Once
	mux         *http.ServeMux
	urlMux      *http.ServeMux
	index       nameIndex
	hot         hotCache
	reads       readAggregator
	bundleCache bundles
	writeMu     sync.Mutex     // serialises the decisions of PUT/DELETE (packing reads then writes specs); guards pending, draining
	pending     map[string]int // names changed by queued writes (groupcommit.go)
	draining    int            // waiters for every queued write to commit
	pendingCond *sync.Cond     // on writeMu: pending or draining changed

	gcMu         sync.Mutex // guards gcQueue, gcBusy
	gcQueue      []*queuedPut
	gcBusy       bool         // a batch is being committed
	groupCommits atomic.Int64 // batches committed, for tests
}

// NameDefaults are the settings of names requested without them.
type NameDefaults struct {
	KeyTypes  []certfleet.KeyType // default [ecdsa-p256]
	Challenge certfleet.ChallengeType
	Account   string
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.MaxWait <= 0 {
			s.MaxWait = DefaultMaxWait
		}
		if s.PollInterval <= 0 {
			s.PollInterval = DefaultPollInterval
		}
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		if len(s.Defaults.KeyTypes) == 0 {
			s.Defaults.KeyTypes = []certfleet.KeyType{certfleet.ECDSAP256}
		}
		if s.Defaults.Challenge == "" {
			s.Defaults.Challenge = certfleet.ChallengeHTTP01
		}
		if s.Changes == nil {
			s.Changes = &certfleet.Changes{}
		}
		s.watchNames()
		s.pendingCond = sync.NewCond(&s.writeMu)
		s.mux = s.buildMux(false)
		s.urlMux = s.buildMux(true)
	})
}

// Handler returns the API for bearer-token clients: mount it on the main
// listener.
func (s *Server) Handler() http.Handler {
	s.init()
	return s.mux
}

// URLHandler returns the read-only API for consumers that carry their
// credential in the URL (Bud's SNI backend, Caddy's get_certificate http):
// paths are /u/{secret}/v1/..., and only tokens made as URL credentials are
// accepted. Serve it on a separate listener, on loopback or a private
// address, and keep its URLs out of shared logs.
func (s *Server) URLHandler() http.Handler {
	s.init()
	return s.urlMux
}

// Serve serves h on ln until ctx ends, then shuts down gracefully, with
// the default bounds of ServeOptions (slow headers, slow bodies, idle and
// per-client connections).
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	return ServeWith(ctx, ln, h, ServeOptions{})
}

// route is one endpoint. The router, the authorization checks and the
// OpenAPI document are all built from the routes table.
type route struct {
	method, path string // path in ServeMux syntax, e.g. /v1/names/{hostname}/cert
	perm         certfleet.Permission
	// urlOK: also served to URL credentials (reads only).
	urlOK bool
	// public: no credentials needed.
	public bool
	// enroll: authenticated by an enrollment token, in the handler.
	enroll bool
	// identityOnly: only a host identity's client certificate, whatever
	// its permissions.
	identityOnly bool
	summary      string
	h            func(s *Server, w http.ResponseWriter, r *http.Request, p principal)
}

// routes is the API. Keep GET /v1/openapi.json in step: TestOpenAPI checks.
var routes = []route{
	{method: "PUT", path: "/v1/names/{hostname}", perm: certfleet.PermRequestNames, h: (*Server).putName,
		summary: "Request a certificate for a name (idempotent); 202 until issued, 200 after"},
	{method: "DELETE", path: "/v1/names/{hostname}", perm: certfleet.PermRequestNames, h: (*Server).deleteName,
		summary: "Withdraw a name; ?revoke=true also revokes its certificate and destroys its key"},
	{method: "GET", path: "/v1/names/{hostname}/cert", perm: certfleet.PermReadCerts, urlOK: true, h: pemHandler(partCert),
		summary: "The end-entity certificate, PEM"},
	{method: "GET", path: "/v1/names/{hostname}/chain", perm: certfleet.PermReadCerts, urlOK: true, h: pemHandler(partChain),
		summary: "The intermediates, without the end-entity certificate, PEM"},
	{method: "GET", path: "/v1/names/{hostname}/fullchain", perm: certfleet.PermReadCerts, urlOK: true, h: pemHandler(partFullchain),
		summary: "The certificate followed by the intermediates, PEM"},
	{method: "GET", path: "/v1/names/{hostname}/privkey", perm: certfleet.PermReadKeys, urlOK: true, h: pemHandler(partKey),
		summary: "The private key, PEM (PKCS #8); every read is recorded"},
	{method: "GET", path: "/v1/names/{hostname}/bud", perm: certfleet.PermReadKeys, urlOK: true, h: (*Server).bud,
		summary: "Bud SNI backend JSON: cert and key (arrays for dual certificates)"},
	{method: "GET", path: "/v1/names/{hostname}/status", perm: certfleet.PermReadCerts, h: (*Server).status,
		summary: "Renewal status: current certificate, next renewal, failures (JSON, or HTML for text/html)"},
	{method: "POST", path: "/v1/names/{hostname}/retry", perm: certfleet.PermRequestNames, h: (*Server).retry,
		summary: "Order now if the certificate is due; a valid one not due answers 409 with why; ?force=true renews it anyway"},
	{method: "POST", path: "/v1/names/{hostname}/csr", perm: certfleet.PermRequestNames, h: (*Server).postCSR,
		summary: "Request the name in CSR mode: the host keeps its key; body is a PEM CSR"},
	{method: "GET", path: "/v1/bud/ocsp/{id}", perm: certfleet.PermReadCerts, urlOK: true, h: (*Server).budOCSP,
		summary: "Bud OCSP stapling lookup: always a JSON 404 ({}); CAs are retiring OCSP"},
	{method: "POST", path: "/v1/bud/ocsp/{id}", perm: certfleet.PermReadCerts, urlOK: true, h: (*Server).budOCSPPost,
		summary: "Bud OCSP stapling POST: always a JSON 404 ({}); certfleet never contacts the URL it names"},
	{method: "GET", path: "/v1/tls/get_certificate", perm: certfleet.PermReadKeys, urlOK: true, h: (*Server).getCertificate,
		summary: "Caddy get_certificate http: chain and key PEM for ?server_name=, 204 if unmanaged"},
	{method: "GET", path: "/v1/certificates", perm: certfleet.PermReadCerts, h: (*Server).listCertificates,
		summary: "The certificates in scope, paged (?limit=, ?after=)"},
	{method: "GET", path: "/v1/certificates/{id}", perm: certfleet.PermReadCerts, h: (*Server).getCertificateSpec,
		summary: "One certificate by name"},
	{method: "POST", path: "/v1/agents/{agent}/report", perm: certfleet.PermReadCerts, h: (*Server).report,
		summary: "An agent reports what it installed for a name (JSON); shown in the name's status as the fleet"},
	{method: "GET", path: "/v1/audit", perm: certfleet.PermAdmin, h: (*Server).audit,
		summary: "The audit trail, newest first, filtered and paged (?certificate=, kind=, actor=, since=, until=, before_id=, limit=); admins only"},
	{method: "GET", path: "/v1/tenants", perm: certfleet.PermAdmin, h: (*Server).listTenants,
		summary: "The tenants, with what each uses of its quotas; operator admins only"},
	{method: "GET", path: "/v1/tenants/{tenant}", perm: certfleet.PermAdmin, h: (*Server).getTenant,
		summary: "One tenant and its usage"},
	{method: "PUT", path: "/v1/tenants/{tenant}", perm: certfleet.PermAdmin, h: (*Server).putTenant,
		summary: "Create a tenant (201) or replace its settings (200): name patterns, account, quotas"},
	{method: "PATCH", path: "/v1/tenants/{tenant}", perm: certfleet.PermAdmin, h: (*Server).patchTenant,
		summary: "Change some of a tenant's settings"},
	{method: "DELETE", path: "/v1/tenants/{tenant}", perm: certfleet.PermAdmin, h: (*Server).deleteTenant,
		summary: "Delete a tenant and revoke its tokens; refused while it has certificates, unless ?withdraw=true"},
	{method: "GET", path: "/v1/tenants/{tenant}/tokens", perm: certfleet.PermAdmin, h: (*Server).listTenantTokens,
		summary: "The tenant's tokens (never their secrets)"},
	{method: "POST", path: "/v1/tenants/{tenant}/tokens", perm: certfleet.PermAdmin, h: (*Server).createTenantToken,
		summary: "Create a token bound to the tenant; its secret is in the answer, once"},
	{method: "DELETE", path: "/v1/tenants/{tenant}/tokens/{id}", perm: certfleet.PermAdmin, h: (*Server).revokeTenantToken,
		summary: "Revoke a token of the tenant"},
	{method: "GET", path: "/v1/accounts", perm: certfleet.PermAdmin, h: (*Server).listAccounts,
		summary: "The ACME accounts: the config's names, and those declared at runtime (never a MAC key)"},
	{method: "GET", path: "/v1/accounts/{account}", perm: certfleet.PermAdmin, h: (*Server).getAccount,
		summary: "One ACME account declared at runtime"},
	{method: "PUT", path: "/v1/accounts/{account}", perm: certfleet.PermAdmin, h: (*Server).putAccount,
		summary: "Declare an ACME account (CA, contact, EAB), or replace it; every instance uses it at once"},
	{method: "DELETE", path: "/v1/accounts/{account}", perm: certfleet.PermAdmin, h: (*Server).deleteAccount,
		summary: "Delete a declared account; refused while a tenant or certificate orders with it"},
	{method: "POST", path: "/v1/identities/enroll", enroll: true, h: (*Server).enrollIdentity,
		summary: "A host enrolls once: an enrollment token (Authorization: Bearer cfe_…) and its CSR; answers its client certificate"},
	{method: "POST", path: "/v1/identities/renew", identityOnly: true, h: (*Server).renewIdentity,
		summary: "A host identity renews its client certificate (mTLS with the current one) for a new CSR"},
	{method: "GET", path: "/v1/openapi.json", public: true, h: (*Server).openAPI,
		summary: "This API, described in OpenAPI 3"},
}

// buildMux registers every route under its path; the method is checked
// by dispatch so that a wrong method gets a problem document.
func (s *Server) buildMux(urlCred bool) *http.ServeMux {
	mux := http.NewServeMux()
	byPath := make(map[string][]route)
	var order []string
	for _, rt := range routes {
		if urlCred && !rt.urlOK {
			continue
		}
		if _, ok := byPath[rt.path]; !ok {
			order = append(order, rt.path)
		}
		byPath[rt.path] = append(byPath[rt.path], rt)
	}
	for _, path := range order {
		rts := byPath[path]
		pattern := path
		if urlCred {
			pattern = "/u/{secret}" + path
		}
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.dispatch(w, r, rts, urlCred) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p := problemf(certfleet.ENOTFOUND, "no such endpoint; see GET /v1/openapi.json")
		if !urlCred {
			p.Instance = r.URL.Path
		}
		writeReply(w, r, problemReply(p))
	})
	return mux
}

// dispatch picks the route for the method, authenticates and authorises.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rts []route, urlCred bool) {
	w.Header().Set("Cache-Control", "no-store")
	var rt *route
	allow := make([]string, 0, len(rts))
	for i := range rts {
		allow = append(allow, rts[i].method)
		if rts[i].method == r.Method || (r.Method == http.MethodHead && rts[i].method == http.MethodGet) {
			rt = &rts[i]
		}
	}
	if rt == nil {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.fail(w, r, urlCred, problemf(codeMethodNotAllowed, "%s is not allowed here; use %s", r.Method, strings.Join(allow, " or ")))
		return
	}
	var p principal
	if !rt.public && !rt.enroll {
		var prob *Problem
		p, prob = s.authenticate(r, urlCred)
		if prob != nil {
			if prob.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="certfleet"`)
			}
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				// A refused client certificate (expired, revoked) is
				// the connection's: a client that has renewed must
				// present the new one in a new handshake.
				w.Header().Set("Connection", "close")
			}
			s.fail(w, r, urlCred, prob)
			return
		}
		switch {
		case rt.identityOnly:
			if !p.identity {
				s.fail(w, r, urlCred, problemf(codeForbidden, "only a host identity, with its client certificate, may do this"))
				return
			}
		case !p.token.Has(rt.perm):
			s.fail(w, r, urlCred, problemf(codeForbidden, "this %s lacks the %s permission", p.kind(), rt.perm))
			return
		case rt.perm == certfleet.PermReadKeys && s.RequireClientCertForKeys && !urlCred && !p.identity:
			s.fail(w, r, urlCred, problemf(codeForbidden,
				"private keys are read here only with a host identity's client certificate (require_client_cert_for_keys); enroll the host (certfleet agent --enroll-token)"))
			return
		}
		if rt.perm == certfleet.PermAdmin && p.token.Tenant != "" {
			s.fail(w, r, urlCred, problemf(codeForbidden, "this is a token of tenant %q; administration is the operator's", p.token.Tenant))
			return
		}
	}
	p.urlCred = urlCred
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	}
	rt.h(s, w, r, p)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, urlCred bool, p *Problem) {
	if !urlCred {
		p.Instance = r.URL.Path
	}
	writeReply(w, r, problemReply(p))
}

// principal is the authenticated caller.
type principal struct {
	// token is the API token, or the scope of the host identity.
	token   certfleet.Token
	urlCred bool
	// identity: authenticated by a client certificate (token.ID is the
	// identity's).
	identity bool
}

func (p principal) kind() string {
	if p.identity {
		return "identity"
	}
	return "token"
}

// authenticate finds the caller's token: from the Authorization header on
// the main handler, from the path on the URL handler. Unknown and revoked
// tokens get the same answer.
func (s *Server) authenticate(r *http.Request, urlCred bool) (principal, *Problem) {
	var secret string
	if urlCred {
		secret = r.PathValue("secret")
	} else {
		h := r.Header.Get("Authorization")
		if h == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			return s.authenticateCert(r)
		}
		scheme, rest, ok := strings.Cut(h, " ")
		if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
			return principal{}, problemf(codeUnauthenticated, "send a token: Authorization: Bearer cft_…")
		}
		secret = strings.TrimSpace(rest)
	}
	if !strings.HasPrefix(secret, certfleet.TokenPrefix) {
		return principal{}, problemf(codeUnauthenticated, "the token is not valid")
	}
	hash := certfleet.HashTokenSecret(secret)
	t, err := s.tokenByHash(r.Context(), hash)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND || (err == nil && (t.Revoked() || !certfleet.TokenHashEqual(t.Hash, hash))) {
		return principal{}, problemf(codeUnauthenticated, "the token is not valid (unknown or revoked)")
	} else if err != nil {
		s.Logger.Error("look up API token", certfleet.LogError, err)
		return principal{}, problemf(certfleet.EUNAVAILABLE, "cannot check the token now; retry")
	}
	if t.URLCredential != urlCred {
		if urlCred {
			return principal{}, problemf(codeUnauthenticated, "this token is not a URL credential; create one with certfleet token create --url")
		}
		return principal{}, problemf(codeUnauthenticated, "URL credentials are accepted only on the URL listener, in the path")
	}
	return principal{token: t}, nil
}

// writeReply writes rep, or 304 when the client's If-None-Match matches.
func writeReply(w http.ResponseWriter, r *http.Request, rep reply) {
	h := w.Header()
	for k, v := range rep.header {
		h[k] = v
	}
	if rep.etag != "" {
		h.Set("ETag", rep.etag)
		if rep.status == http.StatusOK && etagMatch(r.Header.Get("If-None-Match"), rep.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if rep.ctype != "" {
		h.Set("Content-Type", rep.ctype)
	}
	h.Set("Content-Length", strconv.Itoa(len(rep.body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(rep.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(rep.body)
	}
}

// etagOf is a strong ETag of a body.
func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 §13.1.2).
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	if strings.TrimSpace(header) == "*" {
		return true
	}
	for _, c := range strings.Split(header, ",") {
		c = strings.TrimPrefix(strings.TrimSpace(c), "W/")
		if c == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// parseWait reads ?wait= (a Go duration or seconds), capped at MaxWait.
func (s *Server) parseWait(r *http.Request) (time.Duration, *Problem) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			return 0, problemf(certfleet.EINVALID, "wait=%q: give a duration such as 30s", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, problemf(certfleet.EINVALID, "wait=%q: must not be negative", v)
	}
	return min(d, s.MaxWait), nil
}

// longPoll writes render's reply. With ?wait=, while the reply is what the
// client already has (If-None-Match) or a 404 (nothing yet), it waits for a
// change and renders again, until the wait is over.
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request, render func(ctx context.Context) reply) {
	urlCred := strings.HasPrefix(r.URL.Path, "/u/")
	wait, prob := s.parseWait(r)
	if prob != nil {
		s.fail(w, r, urlCred, prob)
		return
	}
	ctx := r.Context()
	deadline := s.Now().Add(wait)
	inm := r.Header.Get("If-None-Match")
	for fresh := false; ; {
		changed := s.Changes.Wait()
		rctx := ctx
		if fresh {
			rctx = withFresh(ctx)
		}
		rep := render(rctx)
		waiting := (rep.status == http.StatusOK && rep.etag != "" && etagMatch(inm, rep.etag)) || rep.status == http.StatusNotFound
		left := deadline.Sub(s.Now())
		if wait == 0 || !waiting || left <= 0 {
			s.send(w, r, rep, urlCred)
			return
		}
		if !fresh {
			// Never wait on a cached answer: another instance's change
			// reaches the caches only when they expire, and one made
			// just before this request would wake no one. From here on
			// every render reads the store.
			fresh = true
			continue
		}
		t := time.NewTimer(min(left, s.PollInterval))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// send writes rep, first recording the key read it carries (if it is sent:
// not for a 304). No record, no key.
func (s *Server) send(w http.ResponseWriter, r *http.Request, rep reply, urlCred bool) {
	if rep.keyRead != nil && rep.consumer != "" && rep.status == http.StatusOK && !etagMatch(r.Header.Get("If-None-Match"), rep.etag) {
		if prob := s.recordRepeatedRead(r, rep); prob != nil {
			s.fail(w, r, urlCred, prob)
			return
		}
	} else if rep.keyRead != nil && rep.status == http.StatusOK && !etagMatch(r.Header.Get("If-None-Match"), rep.etag) {
		kr := *rep.keyRead
		kr.At, kr.Remote = s.Now(), r.RemoteAddr
		if err := s.Store.RecordKeyRead(r.Context(), kr); err != nil {
			s.Logger.Error("record key read; key not sent", certfleet.LogError, err)
			s.fail(w, r, urlCred, problemf(certfleet.EUNAVAILABLE, "cannot record the key read now; retry"))
			return
		}
		s.Logger.Info("private key read", "token", kr.TokenID, certfleet.LogCertificate, kr.Spec,
			certfleet.LogKeyType, string(kr.KeyType), certfleet.LogSerial, kr.Serial, "remote", kr.Remote)
	}
	writeReply(w, r, rep)
}

// readBody reads a request body of at most MaxBodyBytes.
func readBody(r *http.Request) ([]byte, *Problem) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, problemf(codeTooLarge, "the body is larger than %d bytes", MaxBodyBytes)
	} else if err != nil {
		return nil, problemf(certfleet.EINVALID, "read body: %v", err)
	}
	return b, nil
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.Logger.Error(what, "path", safePath(r), certfleet.LogError, err)
	p := problemFor(err)
	s.fail(w, r, strings.HasPrefix(r.URL.Path, "/u/"), p)
}

// safePath is the request path with a URL credential masked, for logs.
func safePath(r *http.Request) string {
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, "/u/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return "/u/…" + rest[i:]
		}
		return "/u/…"
	}
	return p
}

func errorf(code, format string, args ...any) error { return certfleet.Errorf(code, format, args...) }

var _ = fmt.Sprintf
