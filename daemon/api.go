package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/connlimit"
	"github.com/certfleet/certfleet/httpapi"
)

// APIOptions override the [api] listeners (tests, the demo): a listener
// set is served instead of listening on the configured address.
type APIOptions struct {
	Listener, URLListener net.Listener
}

// APIStore returns a store as the HTTP API needs it (with API tokens), or
// an error saying that store keeps none.
func APIStore(s certfleet.Store) (httpapi.Store, error) {
	as, ok := s.(httpapi.Store)
	if !ok {
		return nil, fmt.Errorf("the HTTP API needs API tokens in the store, which the %T store does not keep", s)
	}
	return as, nil
}

// StartAPI serves the HTTP API on [api] listen (and the URL-credential API
// on [api] url_listen) until the daemon closes. It returns the bound
// addresses ("" for a listener not started). Long-polls see a certificate
// issued by this daemon at once, and one issued by another instance when the
// store notifies (PostgreSQL), else within the API's poll interval (1 s).
func (d *Daemon) StartAPI(ctx context.Context, o APIOptions) (addr, urlAddr string, err error) {
	cfg := d.Config.API
	if o.Listener == nil && o.URLListener == nil && cfg.Listen == "" && cfg.URLListen == "" {
		return "", "", nil
	}
	store, err := APIStore(d.Store)
	if err != nil {
		return "", "", err
	}
	if d.serveCtx == nil {
		d.serveCtx, d.stopServe = context.WithCancel(context.WithoutCancel(ctx))
	}
	// Revocation goes to the ACME issuers themselves: the Manager's may be
	// wrapped (the dns-01 preflight), which hides their Revoke.
	revokers := make(map[string]certfleet.Revoker)
	for name, iss := range d.Manager.Issuers {
		if a, ok := d.acme[name]; ok {
			revokers[name] = a
		} else if rv, ok := iss.(certfleet.Revoker); ok {
			revokers[name] = rv
		}
	}
	if n, ok := d.Store.(certfleet.Notifier); ok {
		// Certificates issued by other instances wake long-polls too.
		// The notification says nothing of what changed, and this
		// instance's own writes come back the same way (every PUT): the
		// API's caches keep what they hold for their short expiry
		// (httpapi cacheTTL) rather than read the store again at every
		// one; woken long-polls read it.
		ch := n.Changes(d.serveCtx)
		go func() {
			for range ch {
				d.changes.NotifyElsewhere()
			}
		}()
	}
	srv := &httpapi.Server{
		Store: store, Wake: d.Manager.Wake, Revokers: revokers, PackSize: cfg.PackSize, Changes: d.changes,
		Logger: d.Logger.With("component", "api"), Events: &d.events,
	}
	if d.Metrics != nil {
		srv.OnAgentReport = d.Metrics.AgentCheckin // every check-in, for metrics
	}
	d.tenantAPI(srv) // tenants, declared accounts, what the solvers can answer (issue 12)
	var tlsConf *tls.Config
	if cfg.TLSCertificate != "" {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: (&apiCert{store: store, spec: cfg.TLSCertificate}).get}
	}
	if err := d.startIdentities(srv, tlsConf); err != nil { // mutual TLS (issue 17)
		return "", "", err
	}
	start := func(what string, ln net.Listener, listen string, h func() any) (string, error) {
		if ln == nil {
			if listen == "" {
				return "", nil
			}
			if ln, err = net.Listen("tcp", listen); err != nil {
				return "", fmt.Errorf("%s: listen on %q ([api]): %w", what, listen, err)
			}
		}
		if tlsConf != nil {
			ln = tls.NewListener(ln, tlsConf)
		}
		d.listeners = append(d.listeners, ln)
		handler := srv.URLHandler()
		if what != "URL-credential API" {
			handler = d.withDashboard(ctx, d.apiHandler(srv), store) // the dashboard and /metrics (behind a token) share the bearer-token listener
		}
		// Key reads counted and not yet recorded are recorded once the
		// listener has stopped (httpapi keyreads.go).
		// Slow headers, bodies, idle and per-client connections are
		// bounded (issue 17); max_connections_per_ip raises the last
		// behind a proxy.
		opts := httpapi.ServeOptions{Limiter: &connlimit.Limiter{PerIP: cfg.MaxConnsPerIP}}
		d.serve(what, func() error { defer srv.FlushKeyReads(); return httpapi.ServeWith(d.serveCtx, ln, handler, opts) })
		d.Logger.Info(what+" listening", "addr", ln.Addr().String(), "tls", tlsConf != nil)
		return ln.Addr().String(), nil
	}
	if addr, err = start("API", o.Listener, cfg.Listen, nil); err != nil {
		return "", "", err
	}
	if urlAddr, err = start("URL-credential API", o.URLListener, cfg.URLListen, nil); err != nil {
		return "", "", err
	}
	return addr, urlAddr, nil
}

// apiCert serves the API's TLS with the current certificate of a spec
// certfleet manages (ECDSA when it is dual), re-read when it renews.
type apiCert struct {
	store certfleet.Store
	spec  string

	mu     sync.Mutex // guards id, cert
	id     int64
	cert   *tls.Certificate
	loaded time.Time
}

func (a *apiCert) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cert != nil && time.Since(a.loaded) < 30*time.Second {
		return a.cert, nil
	}
	ctx, cancel := context.WithTimeout(hello.Context(), 5*time.Second)
	defer cancel()
	sp, err := a.store.Spec(ctx, a.spec)
	if err != nil {
		return nil, fmt.Errorf("API TLS certificate %q: %w", a.spec, err)
	}
	kt := sp.KeyTypes[0]
	for _, k := range sp.KeyTypes {
		if k.Family() == "ecdsa" {
			kt = k
		}
	}
	job, err := a.store.Job(ctx, certfleet.JobKey{Spec: a.spec, KeyType: kt})
	if err != nil || job.CurrentID == 0 {
		return nil, fmt.Errorf("API TLS certificate %q is not issued yet", a.spec)
	}
	if job.CurrentID != a.id {
		iss, err := a.store.Issuance(ctx, job.CurrentID)
		if err != nil {
			return nil, err
		}
		c, err := tls.X509KeyPair(iss.ChainPEM, iss.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("API TLS certificate %q: %w", a.spec, err)
		}
		a.id, a.cert = job.CurrentID, &c
	}
	a.loaded = time.Now()
	return a.cert, nil
}
