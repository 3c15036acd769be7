// Package dashboard is certfleet's operator web page: a server-rendered
// list of the certificates a token may see, with their status (ok,
// renewing, pending, failing, expiring on the alerts' thresholds, expired),
// expiry, next renewal, recent errors with the CA's problem type and what
// they mean for the next try, and which agents run the current certificate
// and which an old one; a page per certificate with its attempts and
// endpoints; a timeline of the coming expiries and renewals (SVG); the open
// alert incidents; the audit trail with filters; the endpoint checks; the
// schedulers' liveness from their heartbeats in the store; and, for admin
// tokens, a retry button whose page says what the retry did.
//
// It is plain HTML from html/template with one embedded style sheet: no
// JavaScript, no external assets, only links and forms, so it works in any
// browser and behind any proxy. Browsers cannot send bearer headers, so the
// operator logs in by pasting an API token once; the dashboard then keeps a
// signed session cookie that names the token's ID (never the secret) and is
// checked against the token store on every request, so revoking the token
// logs the session out.
//
// It does not change specs, tokens or configuration (use the API and the
// CLI), keep an audit trail (it hands retries to a certfleet.EventSink), or
// serve the JSON API (httpapi does; cmd mounts both on one listener).
package dashboard

import (
	"context"
	"crypto/rand"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
)

// Defaults of Server's zero fields.
const (
	// DefaultPrefix is where the dashboard is mounted.
	DefaultPrefix = "/dashboard"
	// DefaultSessionTTL is how long a login lasts: a working day, so an
	// operator logs in once a shift and a forgotten browser does not stay
	// logged in for long.
	DefaultSessionTTL = 8 * time.Hour
	// DefaultPageSize is how many certificates a list page shows: enough
	// to scan, small enough that a page of a fleet of 100,000 renders
	// quickly.
	DefaultPageSize = 50
	// recentAttempts is how many attempts the certificate page shows per
	// key type.
	recentAttempts = 20
	// retryTimeout bounds a retry's store writes and audit events, which
	// do not stop when the browser goes away.
	retryTimeout = 30 * time.Second
	// maxFormBytes bounds the body of the dashboard's forms (a token is
	// 47 bytes).
	maxFormBytes = 16 << 10
)

// Store is what the dashboard reads and changes. Every certfleet store
// (sqlite, postgres) implements it; if it also implements
// certfleet.FleetStore, the agents' reports are shown.
type Store interface {
	Spec(ctx context.Context, name string) (certfleet.CertificateSpec, error)
	// CertificatePage is the list's (certfleet.NameIndex): filtered and
	// paged in the store, as the API's.
	CertificatePage(ctx context.Context, q certfleet.CertificateQuery) (certfleet.ListingPage, error)
	Jobs(ctx context.Context, f certfleet.JobFilter) ([]certfleet.Job, error)
	Attempts(ctx context.Context, key certfleet.JobKey, limit int) ([]certfleet.Attempt, error)
	RetryNow(ctx context.Context, key certfleet.JobKey) error
	Issuance(ctx context.Context, id int64) (certfleet.Issuance, error)
	TokenByHash(ctx context.Context, hash []byte) (certfleet.Token, error)
	Token(ctx context.Context, id string) (certfleet.Token, error)
}

// Server serves the dashboard. Set the fields, then use Handler. Fields
// must not change after the first request.
type Server struct {
	// Store is required.
	Store Store
	// Fleet, when set, supplies the agents' reports; by default the
	// Store's, if it is a certfleet.FleetStore.
	Fleet certfleet.FleetStore
	// Events, when set, receives a certfleet.EventRetry event for every
	// job an operator retries, with the actor "token:ID".
	Events certfleet.EventSink
	// Wake, when set, is called after a retry so the scheduler looks at
	// the store at once (manager.Manager.Wake).
	Wake func()
	// Prefix is the path the dashboard is served under; default
	// DefaultPrefix. The session cookie is scoped to it.
	Prefix string
	// SessionKey signs session cookies and derives CSRF tokens; at least
	// 32 bytes. Default: a random key made at the first request, so
	// sessions end when the process restarts and are not valid on other
	// instances (give every instance the same key to share sessions).
	SessionKey []byte
	// SessionTTL is how long a login lasts; default DefaultSessionTTL.
	SessionTTL time.Duration
	// SecureCookie marks the session cookie Secure even on plain HTTP
	// requests (set it behind a TLS-terminating proxy). Requests that
	// arrive over TLS always get a Secure cookie.
	SecureCookie bool
	// Thresholds are the alerts' expiry thresholds (config [alerts]): a
	// certificate within the warning window shows as expiring, with the
	// severity an expiry incident would have. Zero fields are automatic,
	// as in package alert.
	Thresholds alert.Settings
	// Endpoints, when set, supplies the latest endpoint checks (the
	// daemon's endpoint watcher), shown per certificate and on the
	// endpoints page.
	Endpoints alert.EndpointSource
	// RetryWait is how long a retry waits for a running scheduler to
	// take the work before the page says what became of it; default
	// DefaultRetryWait. It does not wait when no scheduler runs.
	RetryWait time.Duration
	// PageSize is the number of certificates per list page; default
	// DefaultPageSize.
	PageSize int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives logins, retries and errors; nil discards.
	Logger *slog.Logger

	once         sync.Once
	fleetIsStore bool // Fleet is Store's: the list reads its reports with the rest of a page's extras
	handler      http.Handler
	pages        map[string]*template.Template
	css          []byte
	cssETag      string
	issMu        sync.Mutex // guards iss
	iss          map[int64]IssuedCert
	outMu        sync.Mutex           // guards loggedOut
	out          map[string]time.Time // session nonce -> its expiry, for sessions logged out before they expire
}

//go:embed templates/*.html static/style.css
var assets embed.FS

func (s *Server) init() {
	s.once.Do(func() {
		if s.Prefix == "" {
			s.Prefix = DefaultPrefix
		}
		s.Prefix = "/" + strings.Trim(s.Prefix, "/")
		if len(s.SessionKey) < 32 {
			s.SessionKey = make([]byte, 32)
			_, _ = rand.Read(s.SessionKey) // crypto/rand.Read never fails (Go 1.24+)
		}
		if s.SessionTTL <= 0 {
			s.SessionTTL = DefaultSessionTTL
		}
		if s.RetryWait <= 0 {
			s.RetryWait = DefaultRetryWait
		}
		if s.PageSize <= 0 {
			s.PageSize = DefaultPageSize
		}
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		if s.Fleet == nil {
			s.Fleet, _ = s.Store.(certfleet.FleetStore)
			s.fleetIsStore = s.Fleet != nil
		}
		s.pages = parsePages()
		s.css, _ = assets.ReadFile("static/style.css")
		s.cssETag = etagOf(s.css)

		mux := http.NewServeMux()
		p := s.Prefix
		mux.HandleFunc("GET "+p+"/{$}", s.withUser(s.list))
		mux.HandleFunc("GET "+p+"/cert/{name}", s.withUser(s.detail))
		mux.HandleFunc("POST "+p+"/cert/{name}/retry", s.withUser(s.retry))
		mux.HandleFunc("GET "+p+"/timeline", s.withUser(s.timeline))
		mux.HandleFunc("GET "+p+"/incidents", s.withUser(s.incidents))
		mux.HandleFunc("GET "+p+"/audit", s.withUser(s.audit))
		mux.HandleFunc("GET "+p+"/endpoints", s.withUser(s.endpoints))
		mux.HandleFunc("GET "+p+"/login", s.loginForm)
		mux.HandleFunc("POST "+p+"/login", s.login)
		mux.HandleFunc("POST "+p+"/logout", s.withUser(s.logout))
		mux.HandleFunc("GET "+p+"/static/style.css", s.style)
		mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
			s.errorPage(w, r, nil, http.StatusNotFound, "There is no such page. Go to the certificate list.")
		})
		// Cross-origin POSTs (Sec-Fetch-Site, Origin) are refused before
		// any handler runs; the per-session CSRF token covers browsers
		// that send neither header.
		s.handler = secureHeaders(http.NewCrossOriginProtection().Handler(mux))
	})
}

// Handler returns the dashboard. Mount it at Prefix + "/" on the API's
// listener.
func (s *Server) Handler() http.Handler {
	s.init()
	return s.handler
}

// secureHeaders sets the headers every dashboard answer carries: nothing is
// cached (pages hold fleet details), nothing may frame the page
// (clickjacking of the retry button), and the only thing a page may load is
// the dashboard's own style sheet.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", s.cssETag)
	if r.Header.Get("If-None-Match") == s.cssETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(s.css)
}
