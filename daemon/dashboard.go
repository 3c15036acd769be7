package daemon

import (
	"context"
	"crypto/rand"
	"net/http"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/dashboard"
	"github.com/certfleet/certfleet/httpapi"
)

// dashboardKeySecret is the stored secret that signs dashboard sessions.
// Kept in the store (sealed under the master key), it is shared by every
// instance on one database and survives restarts; deleting it (certfleet
// secret delete) and restarting ends every session.
const dashboardKeySecret = "dashboard-session-key"

// withDashboard serves the operator dashboard under /dashboard/ beside the
// API on the main API listener (same tokens), and sends a browser that
// opens the bare address there.
func (d *Daemon) withDashboard(ctx context.Context, api http.Handler, store httpapi.Store) http.Handler {
	dash := &dashboard.Server{Store: store, Events: &d.events, Wake: d.Manager.Wake, // retries go to the audit trail like the API's
		SessionKey: d.dashboardSessionKey(ctx), Logger: d.Logger.With("component", "dashboard"),
		// The alerts' thresholds as the daemon started (a reload that
		// changes them applies to the dashboard at the next start), and
		// this instance's endpoint checks.
		Thresholds: d.Alerts.Settings, Endpoints: d.endpoints}
	mux := http.NewServeMux()
	mux.Handle(dashboard.DefaultPrefix+"/", dash.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler(dashboard.DefaultPrefix+"/", http.StatusSeeOther))
	mux.Handle("/", api)
	return mux
}

// dashboardSessionKey returns the shared session key from the store, made
// on first use. Without it (a store without a master key keeps no secrets)
// it returns nil: the dashboard then makes a key of its own, and sessions
// end at restart and hold on this instance only.
func (d *Daemon) dashboardSessionKey(ctx context.Context) []byte {
	key, err := d.Store.Secret(ctx, dashboardKeySecret)
	if err == nil && len(key) >= 32 {
		return key
	}
	if err != nil && certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		d.Logger.Warn("dashboard: cannot read the session key from the store; sessions will end at restart", certfleet.LogError, err)
		return nil
	}
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh) // crypto/rand.Read never fails (Go 1.24+)
	if err := d.Store.PutSecret(ctx, dashboardKeySecret, fresh); err != nil {
		d.Logger.Info("dashboard: sessions are signed with a key made at start, so they end at restart and hold on this instance only", certfleet.LogError, err)
		return nil
	}
	// Another instance starting at the same moment may have stored its
	// own: use whichever the store kept.
	if key, err := d.Store.Secret(ctx, dashboardKeySecret); err == nil && len(key) >= 32 {
		return key
	}
	return fresh
}
