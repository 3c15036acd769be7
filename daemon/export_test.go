package daemon

import (
	"context"
	"time"

	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/endpoint"
)

// What the package's external tests (package daemon_test) reach inside.

// CheckEndpointsNow runs one pass of the endpoint watcher at once.
func (d *Daemon) CheckEndpointsNow(ctx context.Context) { d.endpoints.pass(ctx) }

// EndpointObservations are the endpoint watcher's latest checks.
func (d *Daemon) EndpointObservations() []alert.EndpointObservation {
	return d.endpoints.EndpointObservations()
}

// ObserveEndpoint feeds an endpoint check to the readiness metrics.
func (d *Daemon) ObserveEndpoint(cfg *config.Config, r endpoint.Finding, at time.Time) {
	d.observeEndpoint(cfg, r, at)
}

var (
	ReadTokenFile      = readTokenFile
	ACMEDNSCredentials = acmeDNSCredentials
	EndpointTargets    = func(c config.Certificate) []endpoint.Target { return endpointTargets(c) }
)
