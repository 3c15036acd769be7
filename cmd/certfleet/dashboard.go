package main

import (
	"net/http"

	"github.com/certfleet/certfleet/dashboard"
	"github.com/certfleet/certfleet/httpapi"
)

// withDashboard serves the operator dashboard under /dashboard/ beside the
// API on the main API listener (same tokens), and sends a browser that
// opens the bare address there.
func (d *Daemon) withDashboard(api http.Handler, store httpapi.Store) http.Handler {
	events := d.Manager.Events // the daemon's sinks (audit, metrics, alerts) when wired
	if events == nil {
		events = d.Store // every store keeps the audit trail
	}
	dash := &dashboard.Server{Store: store, Events: events, Wake: d.Manager.Wake,
		Logger: d.Logger.With("component", "dashboard")}
	mux := http.NewServeMux()
	mux.Handle(dashboard.DefaultPrefix+"/", dash.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler(dashboard.DefaultPrefix+"/", http.StatusSeeOther))
	mux.Handle("/", api)
	return mux
}
