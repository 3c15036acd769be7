package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/deploy"
)

// writeCopies writes a certificate's copy targets (copy = [...]) with
// deploy.WriteFileAtomic: the files holding the private key first, so that
// a server reading a key and a certificate from two copies never sees a new
// certificate beside an old key. A file already up to date is left alone.
// It reports whether any file was written.
func writeCopies(c config.Certificate, iss certfleet.Issuance) (changed bool, err error) {
	copies := c.CopyPaths()
	if len(copies) == 0 {
		return false, nil
	}
	leafPEM, chainPEM, err := iss.SplitChain()
	if err != nil {
		return false, fmt.Errorf("copy %s: %w", c.Spec.Name, err)
	}
	needKey := slices.ContainsFunc(copies, config.Copy.HasKey)
	if needKey {
		if err := keyMatches(iss); err != nil {
			return false, fmt.Errorf("copy %s: %w", c.Spec.Name, err)
		}
	}
	slices.SortStableFunc(copies, func(a, b config.Copy) int {
		switch {
		case a.HasKey() && !b.HasKey():
			return -1
		case b.HasKey() && !a.HasKey():
			return 1
		}
		return 0
	})
	full := slices.Concat(leafPEM, chainPEM)
	var dirs []string
	for _, cp := range copies {
		var data []byte
		switch cp.Content {
		case config.CopyCombined:
			data = slices.Concat(iss.KeyPEM, full)
		case config.CopyFullchain:
			data = full
		case config.CopyCert:
			data = leafPEM
		case config.CopyChain:
			data = chainPEM
		case config.CopyKey:
			data = iss.KeyPEM
		default:
			return changed, fmt.Errorf("copy %s to %s: unknown content %q", c.Spec.Name, cp.Path, cp.Content)
		}
		written, err := deploy.WriteFileAtomic(cp.Path, data, cp.Mode, cp.Owner, cp.Group)
		if err != nil {
			return changed, fmt.Errorf("copy %s: %w", c.Spec.Name, err)
		}
		if written {
			changed = true
			if d := filepath.Dir(cp.Path); !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	for _, d := range dirs { // the renames are durable before commands run
		if err := deploy.SyncDir(d); err != nil {
			return changed, fmt.Errorf("copy %s: sync %s: %w", c.Spec.Name, d, err)
		}
	}
	return changed, nil
}

// keyMatches checks the issuance has a private key and that it belongs to
// the certificate: a server refuses to load a mismatched pair.
func keyMatches(iss certfleet.Issuance) error {
	if len(iss.KeyPEM) == 0 {
		return errors.New("a copy with content \"key\" or \"combined\" needs the private key, and this issuance has none (CSR mode): use fullchain, cert or chain")
	}
	leaf, err := iss.Leaf()
	if err != nil {
		return err
	}
	key, err := certfleet.ParsePrivateKey(iss.KeyPEM)
	if err != nil {
		return err
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return fmt.Errorf("issuance %d: private key does not match the certificate", iss.ID)
	}
	return nil
}

// copyCommandEnv is the environment of commands run after copies of a
// certificate kept only in the store (output_dir = "") were written.
func copyCommandEnv(c config.Certificate, iss certfleet.Issuance) []string {
	paths := make([]string, 0, len(c.Output.Copies))
	for _, cp := range c.CopyPaths() {
		paths = append(paths, cp.Path)
	}
	return certfleet.ChildEnv(os.Environ(),
		"CERTFLEET_CERTIFICATE="+c.Spec.Name,
		"CERTFLEET_KEY_TYPE="+string(iss.KeyType),
		"CERTFLEET_NAMES="+strings.Join(certfleet.IdentifierValues(iss.Identifiers), " "),
		"CERTFLEET_COPY_PATHS="+strings.Join(paths, " "),
		"CERTFLEET_SERIAL="+iss.Serial,
	)
}

// runCopyCommands runs the commands of a store-only certificate whose
// copies changed (printed instead in test mode).
func (f *fileDeployer) runCopyCommands(ctx context.Context, c config.Certificate, iss certfleet.Issuance) error {
	f.global.note(c.Spec.Name, copyCommandEnv(c, iss))
	if f.printCommands != nil {
		printSkippedCommands(f.printCommands, c.Spec.Name, c.Output.Commands)
		return nil
	}
	return f.runCommands(ctx, c.Spec.Name, c.Output.Commands, copyCommandEnv(c, iss))
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

// cleanupTimeout bounds the cleanup commands of one order; they run on a
// context of their own, since the order's may be cancelled (shutdown).
const cleanupTimeout = 2 * time.Minute

// prepareHook is manager.Manager.Prepare: it runs the certificate's prepare
// commands before an order and returns the running of its cleanup commands.
// A failing prepare command runs the cleanup at once (to undo what the
// commands before it did) and fails the attempt with the command's output.
// In test mode without run_commands both are printed, not run.
func prepareHook(live *liveConfig, writer *deploy.Writer, printCommands io.Writer, log *slog.Logger) func(context.Context, certfleet.CertificateSpec) (func(), error) {
	return func(ctx context.Context, spec certfleet.CertificateSpec) (func(), error) {
		c, ok := live.config().Certificate(spec.Name)
		if !ok || (len(c.Prepare) == 0 && len(c.Cleanup) == 0) {
			return nil, nil
		}
		if printCommands != nil {
			printSkippedCommands(printCommands, spec.Name+" (prepare)", c.Prepare)
			return func() { printSkippedCommands(printCommands, spec.Name+" (cleanup)", c.Cleanup) }, nil
		}
		env := certfleet.ChildEnv(os.Environ(),
			"CERTFLEET_CERTIFICATE="+spec.Name,
			"CERTFLEET_NAMES="+strings.Join(certfleet.IdentifierValues(spec.Identifiers), " "),
		)
		cleanup := func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			for _, argv := range c.Cleanup {
				if r := writer.RunCommand(cctx, argv, env, "", 0); r.Err != nil {
					log.Error("cleanup command failed", certfleet.LogCertificate, spec.Name, certfleet.LogError, r.Err)
				}
			}
		}
		for _, argv := range c.Prepare {
			if r := writer.RunCommand(ctx, argv, env, "", 0); r.Err != nil {
				cleanup()
				return nil, r.Err
			}
		}
		return cleanup, nil
	}
}

// globalQuiet is how long serve waits after a certificate's files changed
// before it runs the [deploy] commands: a renewal wave within it is one
// batch (one reload of the load balancer, not one per certificate).
const globalQuiet = 2 * time.Second

// globalActions batches the certificates whose files changed and runs the
// [deploy] commands once per batch: at the end of an issue pass (flush),
// or in serve when no file changed for globalQuiet.
type globalActions struct {
	live          *liveConfig
	writer        *deploy.Writer
	printCommands io.Writer
	log           *slog.Logger

	mu      sync.Mutex    // guards the fields below
	changed []string      // names, in order of change, without repeats
	lastEnv []string      // the environment of the last changed certificate
	quiet   time.Duration // 0: batches end at flush only (issue)
	timer   *time.Timer
}

// note records a certificate whose files changed, with the environment its
// own commands got.
func (g *globalActions) note(name string, env []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !slices.Contains(g.changed, name) {
		g.changed = append(g.changed, name)
	}
	g.lastEnv = env
	if g.quiet > 0 {
		if g.timer != nil {
			g.timer.Stop()
		}
		g.timer = time.AfterFunc(g.quiet, func() { g.flush(context.Background()) })
	}
}

// debounce makes batches end after quiet without a change (serve).
func (g *globalActions) debounce(quiet time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.quiet = quiet
}

// flush runs the [deploy] commands for the batch so far, if any changed,
// and reports the first failure (also logged).
func (g *globalActions) flush(ctx context.Context) error {
	g.mu.Lock()
	changed, env := g.changed, g.lastEnv
	g.changed, g.lastEnv = nil, nil
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.mu.Unlock()
	cmds := g.live.config().Deploy.Commands
	if len(changed) == 0 || len(cmds) == 0 {
		return nil
	}
	list := strings.Join(changed, " ")
	if g.printCommands != nil {
		printSkippedCommands(g.printCommands, "[deploy] ("+list+")", cmds)
		return nil
	}
	if env == nil {
		env = certfleet.ChildEnv(os.Environ())
	}
	env = append(slices.Clip(env), "CERTFLEET_CHANGED="+list)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, argv := range cmds {
		if r := g.writer.RunCommand(cctx, argv, env, "", 0); r.Err != nil {
			err := fmt.Errorf("[deploy] commands after %s: %w", list, r.Err)
			g.log.Error("deploy command failed", certfleet.LogError, err)
			return err
		}
	}
	g.log.Info("[deploy] commands ran", "changed", list)
	return nil
}
