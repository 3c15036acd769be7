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
	dash := &dashboard.Server{Store: store, Events: d.Manager.Events, Wake: d.Manager.Wake,
		Logger: d.Logger.With("component", "dashboard")}
	mux := http.NewServeMux()
	mux.Handle(dashboard.DefaultPrefix+"/", dash.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler(dashboard.DefaultPrefix+"/", http.StatusSeeOther))
	mux.Handle("/", api)
	return mux
}
