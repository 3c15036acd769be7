package daemon

import (
	"context"

	"github.com/certfleet/certfleet"
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
			return ok && (c.Output.Dir != "" || len(c.Output.Copies) > 0)
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
