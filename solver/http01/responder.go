package http01

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/connlimit"
)

// PathPrefix is where the CA fetches tokens. RFC 8555 §8.3: the path "consists
// of a fixed prefix '/.well-known/acme-challenge/', followed by the 'token'
// value in the challenge".
const PathPrefix = "/.well-known/acme-challenge/"

// DefaultLookupTimeout bounds a request's lookup when
// Responder.LookupTimeout is zero. The CA waits around ten seconds for an
// answer (Pebble 15 s) and a 503 fails the authorization; a database
// restart takes a few seconds, and the answer presented at its start is
// listed from the store right after (issue 16, BENCHMARKS §13: a 5 s cut
// outlasted a 5 s budget by 0.1 s). So look for up to 8 s, under the
// CA's timeout and the server's 10 s write timeout.
const DefaultLookupTimeout = 8 * time.Second

// Responder is an http.Handler that answers http-01 validation requests. It
// is safe for concurrent use; its fields must not change after first use.
//
// It ignores the Host header: a site may proxy or redirect (RFC 8555 §8.3:
// the CA follows redirects) validation requests for any of its names to us,
// and the token alone identifies the answer. Requests for other paths get a
// 404, or go to Fallback when it is set.
type Responder struct {
	// Store is read for tokens not found in Tokens (presented by another
	// instance). It may be nil only when Tokens is set.
	Store certfleet.ChallengeStore
	// Tokens, when set, is consulted first: share it with this process's
	// Solver so its own tokens are answered without a store query.
	Tokens *Tokens
	// Fallback, when set, serves every request outside PathPrefix, e.g. a
	// redirect of plain-HTTP visitors to https. Requests under PathPrefix
	// never reach it, whether or not the token is known.
	Fallback http.Handler
	// Logger receives a debug event per validation request. Nil discards.
	Logger *slog.Logger
	// LookupTimeout bounds a request's lookup: while the store fails,
	// the token is looked for again, in memory and in the store, until
	// it ends. Default DefaultLookupTimeout.
	LookupTimeout time.Duration
	// Now returns the current time, for the Tokens cache. Default time.Now.
	Now func() time.Time
	// Limiter bounds the connections one client address may hold open in
	// Serve (connlimit.DefaultPerIP when nil): with the read and idle
	// timeouts it keeps a slowloris from taking the port the CA must
	// reach.
	Limiter *connlimit.Limiter
}

// ServeHTTP answers GET and HEAD /.well-known/acme-challenge/{token} with the
// key authorization: 200 with the body exactly as RFC 8555 §8.3 requires
// ("the key authorization ... The server SHOULD ignore whitespace characters
// at the end of the body"; we send none). Unknown or malformed tokens get
// 404; a store failure gets 503 so the CA may retry.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	token, ok := strings.CutPrefix(req.URL.Path, PathPrefix)
	if !ok {
		if r.Fallback != nil {
			r.Fallback.ServeHTTP(w, req)
			return
		}
		http.NotFound(w, req)
		return
	}
	log := r.logger()
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !ValidToken(token) {
		log.DebugContext(req.Context(), "http-01 request for malformed token",
			"remote_addr", req.RemoteAddr, "path", req.URL.Path)
		http.NotFound(w, req)
		return
	}
	keyAuth, source, err := r.lookup(req.Context(), token)
	switch {
	case certfleet.ErrorCode(err) == certfleet.ENOTFOUND:
		log.DebugContext(req.Context(), "http-01 request for unknown token",
			"remote_addr", req.RemoteAddr, "token", token, "host", req.Host)
		http.NotFound(w, req)
		return
	case err != nil:
		// Handled here, at the boundary: the CA only sees a 503.
		log.WarnContext(req.Context(), "http-01 token lookup",
			"remote_addr", req.RemoteAddr, "token", token, certfleet.LogError, err)
		http.Error(w, "challenge store unavailable", http.StatusServiceUnavailable)
		return
	}
	log.DebugContext(req.Context(), "http-01 validation request answered",
		"remote_addr", req.RemoteAddr, "token", token, "host", req.Host, "source", source)
	h := w.Header()
	// The RFC 8555 §8.3 example answers with application/octet-stream;
	// CAs ignore the type.
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(keyAuth)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = io.WriteString(w, keyAuth)
	}
}

// lookup finds token in Tokens (presented here, or copied from the store
// by a Follower: a token is unique to its challenge, so a copy is never a
// wrong answer), then in the store. source is "local", "copy" or "store",
// for the log. When the store fails, a token copied before the failure is
// still answered (issue 16), and one copied or stored before
// LookupTimeout ends too.
func (r *Responder) lookup(ctx context.Context, token string) (keyAuth, source string, err error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if r.Tokens != nil {
		if t, ok := r.Tokens.Own(token, now()); ok {
			return t.KeyAuthorization, "local", nil
		}
		if t, ok := r.Tokens.Get(token, now()); ok {
			return t.KeyAuthorization, "copy", nil
		}
	}
	if r.Store == nil {
		return "", "", certfleet.Errorf(certfleet.ENOTFOUND, "http-01 token not found")
	}
	timeout := r.LookupTimeout
	if timeout <= 0 {
		timeout = DefaultLookupTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := retryMin
	for {
		tok, err := r.Store.Challenge(ctx, certfleet.ChallengeHTTP01, token)
		if err == nil {
			return tok.KeyAuthorization, "store", nil
		}
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND || r.Tokens == nil {
			return "", "", err
		}
		// The store failed (issue 16: a database restart). The CA
		// waits for this answer longer than the lookup budget, and a
		// 503 fails the authorization: until the budget ends, look
		// again, in memory (the answer's notification, or the list
		// read once the store is back, may bring it meanwhile) and in
		// the store.
		select {
		case <-ctx.Done():
			return "", "", err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMax)
		if t, ok := r.Tokens.Get(token, now()); ok {
			return t.KeyAuthorization, "copy", nil
		}
	}
}

// Steps of lookup's retries while the store fails: quick enough to answer
// within a second of the answer arriving, few enough to be no load.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 500 * time.Millisecond
)

func (r *Responder) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// Server timeouts for Serve. A validation request is one small GET; anything
// slower is a stuck or hostile client.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 30 * time.Second
	maxHeaderBytes    = 16 << 10
	shutdownTimeout   = 5 * time.Second
)

// ListenAndServe listens on the TCP address addr (":80" for a CA to reach
// it) and calls Serve.
func (r *Responder) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err // net.OpError names the address
	}
	return r.Serve(ctx, ln)
}

// Serve answers HTTP requests on ln until ctx ends, then shuts down
// gracefully (in-flight requests get a few seconds to finish) and returns
// nil. It closes ln. Any other server error is returned.
func (r *Responder) Serve(ctx context.Context, ln net.Listener) error {
	lim := r.Limiter
	if lim == nil {
		lim = &connlimit.Limiter{}
	}
	srv := &http.Server{
		Handler:           r,
		ConnState:         lim.ConnState,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(r.logger().Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
