package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/deploy"
)

// globalQuiet is how long serve waits after a certificate's files changed
// before it runs the [deploy] commands: a renewal wave within it is one
// batch (one reload of the load balancer, not one per certificate).
const globalQuiet = 2 * time.Second

// fileDeployer writes a certificate to the output its config entry (or its
// inventory source) names.
type fileDeployer struct {
	live    *liveConfig
	writer  *deploy.Writer
	changes *certfleet.Changes
	written func(name string) // files changed: check the endpoints
	// printCommands, when set, gets the commands instead of running them
	// (test mode).
	printCommands io.Writer
	global        *deploy.Batch // [deploy] commands, once per batch of changes
	// outputs, once set, is told what was written (deploy.Follower).
	outputs *deploy.Follower
	// store and now record each write's outcome in the job's deploy
	// state (deploystate.go); log reports changes of it.
	store certfleet.JobStore
	now   func() time.Time
	log   *slog.Logger
}

// Deploy writes iss where spec's configuration says, and records the
// outcome as the job's deploy state.
func (f *fileDeployer) Deploy(ctx context.Context, spec certfleet.CertificateSpec, iss certfleet.Issuance) error {
	err := f.write(ctx, spec, iss)
	f.record(ctx, certfleet.JobKey{Spec: spec.Name, KeyType: iss.KeyType}, err)
	if err == nil && f.outputs != nil {
		f.outputs.Written(iss)
	}
	return err
}

func (f *fileDeployer) write(ctx context.Context, spec certfleet.CertificateSpec, iss certfleet.Issuance) error {
	f.changes.NotifySpec(spec.Name) // a new certificate: wake long-polls, whoever declared it
	c, ok := f.live.certificate(spec.Name)
	if !ok {
		return nil // declared elsewhere (API)
	}
	copies := copiesOf(c)
	if c.Output.Dir == "" { // kept in the store, and copied if asked
		if changed, err := deploy.WriteCopies(spec.Name, copies, iss); err != nil || !changed {
			return err
		}
		env := deploy.CopyCommandEnv(spec.Name, copies, iss)
		f.global.Note(deploy.NewChange(spec, iss, "", copies, env))
		if f.printCommands != nil {
			deploy.PrintSkipped(f.printCommands, spec.Name, c.Output.Commands)
			return nil
		}
		return f.runCommands(ctx, spec.Name, c.Output.Commands, env)
	}
	target := deploy.Target{
		Dir: c.Output.Dir, Owner: c.Output.Owner, Group: c.Output.Group,
		KeyMode: c.Output.KeyMode, Commands: c.Output.Commands,
	}
	if f.printCommands != nil {
		target.Commands = nil
	}
	// Copies first: the commands the writer runs after its files see them.
	copied, err := deploy.WriteCopies(spec.Name, copies, iss)
	if err != nil {
		return err
	}
	res, err := f.writer.Write(ctx, target, spec, iss)
	if err != nil {
		return fmt.Errorf("write %s to %s: %w", spec.Name, c.Output.Dir, err)
	}
	if res.Changed || copied {
		f.global.Note(deploy.NewChange(spec, iss, res.Dir, copies, deploy.CommandEnv(res.Dir, spec, iss)))
	}
	if copied && !res.Changed && f.printCommands == nil {
		if err := f.runCommands(ctx, spec.Name, c.Output.Commands, deploy.CommandEnv(res.Dir, spec, iss)); err != nil {
			return err
		}
	}
	if f.printCommands != nil && (res.Changed || copied) {
		deploy.PrintSkipped(f.printCommands, spec.Name, c.Output.Commands)
	}
	if res.Changed && f.written != nil && len(c.Endpoints) > 0 {
		f.written(spec.Name)
	}
	return nil
}

// runCommands runs argv lists in order, without a shell; the first failure
// ends the run and is returned with the command's output.
func (f *fileDeployer) runCommands(ctx context.Context, name string, cmds [][]string, env []string) error {
	for _, argv := range cmds {
		if r := f.writer.RunCommand(ctx, argv, env, "", 0); r.Err != nil {
			return fmt.Errorf("certificate %s: %w", name, r.Err)
		}
	}
	return nil
}

// copiesOf maps a certificate's copy targets (copy = [...], "{name}"
// expanded) onto deploy's.
func copiesOf(c config.Certificate) []deploy.Copy {
	var out []deploy.Copy
	for _, cp := range c.CopyPaths() {
		out = append(out, deploy.Copy{Path: cp.Path, Content: cp.Content, Mode: cp.Mode, Owner: cp.Owner, Group: cp.Group})
	}
	return out
}

// prepareHook is manager.Manager.Prepare: the prepare commands, prepare
// helpers and cleanup commands of the certificate in the configuration in
// force (deploy.Writer.Prepare). In test mode without run_commands they
// are printed, not run.
func prepareHook(live *liveConfig, writer *deploy.Writer, printCommands io.Writer) func(context.Context, certfleet.CertificateSpec) (func(), error) {
	return func(ctx context.Context, spec certfleet.CertificateSpec) (func(), error) {
		c, ok := live.certificate(spec.Name)
		if !ok {
			return nil, nil
		}
		hooks, err := hooksOf(c)
		if err != nil {
			return nil, err
		}
		return writer.Prepare(ctx, spec, hooks, printCommands)
	}
}
