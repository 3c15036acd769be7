package daemon

import (
	"context"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/deploy"
)

// newOutputs builds the follower that keeps this instance's files current
// whichever instance issued (issue 16): the certificates of the
// configuration in force (and the inventory's) that have server-side
// outputs, written by fd. SyncOutputs at the start and every write of fd
// tell it what is written already.
func newOutputs(d *Daemon, fd *fileDeployer) *deploy.Follower {
	return &deploy.Follower{
		Store: d.Store,
		Wants: func(name string) bool {
			c, ok := d.live.certificate(name)
			return ok && hasOutputs(c)
		},
		Certificates: func() []string {
			var names []string
			for _, c := range d.live.certificates() {
				if hasOutputs(c) {
					names = append(names, c.Spec.Name)
				}
			}
			return names
		},
		Deploy: func(ctx context.Context, iss certfleet.Issuance) error {
			c, ok := d.live.certificate(iss.Spec)
			if !ok {
				return nil // removed meanwhile
			}
			return fd.Deploy(ctx, c.Spec, iss) // logged and recorded by the deployer
		},
		Logger: d.Logger,
	}
}

// hasOutputs reports whether c has server-side outputs (output_dir,
// copies), which this instance writes.
func hasOutputs(c config.Certificate) bool {
	return c.Output.Dir != "" || len(c.Output.Copies) > 0
}
