// Package report prints certfleet status's whole report: the certificate
// table or one certificate (package status), the fleet, short-lived
// readiness and endpoint checks (package daemon), alert incidents. It
// wires those packages for the command; it decides nothing and prints
// through package status. It lives apart from daemon so that daemon does
// not depend on the printing (nor on what package status imports).
package report

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/endpoint"
	"github.com/certfleet/certfleet/status"
)

// Options are certfleet status's arguments.
type Options struct {
	// Name, when set, shows that certificate (its name or one of its
	// identifiers) in detail, and nothing else.
	Name string
	// All includes withdrawn certificates in the table.
	All bool
	// Endpoints also checks every configured endpoint.
	Endpoints bool
}

// Status prints what certfleet status prints: the certificate table
// (streamed a page at a time), the fleet, short-lived readiness, alert
// incidents and, with Endpoints, the endpoint checks; or one certificate
// with Name. bad counts the endpoints that do not serve the current
// certificate.
func Status(ctx context.Context, w io.Writer, d *daemon.Daemon, o Options, now time.Time) (bad int, err error) {
	if o.Name != "" {
		return 0, status.Certificate(ctx, w, d.Store, o.Name, now)
	}
	if err := status.Certificates(ctx, w, d.Store, o.All, now); err != nil {
		return 0, err
	}
	if err := status.Fleet(ctx, w, d.Store, now); err != nil {
		return 0, err
	}
	var results []endpoint.Finding
	if o.Endpoints {
		results = daemon.CheckEndpoints(ctx, d.Store, d.Config, &endpoint.Checker{}, now)
	}
	vs, err := daemon.Readiness(ctx, d.Store, d.Config, now, results)
	if err != nil {
		return 0, err
	}
	status.Readiness(w, vs)
	if err := status.Incidents(ctx, w, d.Store, now); err != nil {
		return 0, err
	}
	if o.Endpoints {
		fmt.Fprintln(w)
		bad = status.Endpoints(w, results)
	}
	return bad, nil
}
