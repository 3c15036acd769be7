package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/certfleet/certfleet/connlimit"
)

// The bounds of a served listener (issue 17: a slow body held a connection
// open, unauthenticated, for as long as the client liked).
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultBodyTimeout bounds reading a request's body, from the end of
	// its headers: the API's bodies are small (JSON, a CSR, at most
	// MaxBodyBytes), so 20 s is generous on any link.
	DefaultBodyTimeout = 20 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection that sends no
	// new request.
	DefaultIdleTimeout = 60 * time.Second
)

// ServeOptions bounds a listener ServeWith serves. Zero fields take the
// defaults. There is no write timeout: long-polls last up to MaxWait.
type ServeOptions struct {
	// ReadHeaderTimeout: see DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// BodyTimeout: see DefaultBodyTimeout. It is a deadline on the
	// connection's reads set when a request with a body arrives and
	// lifted once the body is read, so a long-poll (a GET, no body) is
	// never cut short by it.
	BodyTimeout time.Duration
	// IdleTimeout: see DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Limiter bounds the connections one client IP may hold open
	// (connlimit.DefaultPerIP when nil).
	Limiter *connlimit.Limiter
}

// ServeWith serves h on ln until ctx ends, then shuts down gracefully,
// within the bounds of o.
func ServeWith(ctx context.Context, ln net.Listener, h http.Handler, o ServeOptions) error {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Limiter == nil {
		o.Limiter = &connlimit.Limiter{}
	}
	srv := &http.Server{
		Handler:           bodyDeadline(h, o.BodyTimeout),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         o.Limiter.ConnState,
		// No WriteTimeout: long-polls last up to MaxWait.
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		case <-done:
		}
	}()
	err := srv.Serve(ln)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// bodyDeadline bounds the reading of a request's body to d from the end of
// its headers: a client dribbling a body (or sending none after announcing
// one) loses its connection at d, whether the handler reads the body or
// answers without it (the server then drains it before reusing the
// connection, under the same deadline). Once the body is read to its end
// the deadline is lifted, so that the server's watch for the client going
// away, which starts then, does not cancel a handler that runs longer. A
// request without a body gets no deadline: its handler may be a long-poll.
func bodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || (r.ContentLength == 0 && len(r.TransferEncoding) == 0) {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
			r.Body = &liftOnEOF{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		}
		h.ServeHTTP(w, r)
	})
}

// liftOnEOF calls lift once, when the body has been read to its end.
type liftOnEOF struct {
	io.ReadCloser
	lift func()
	done bool
}

func (b *liftOnEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.lift()
	}
	return n, err
}
