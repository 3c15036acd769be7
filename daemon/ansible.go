package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/export"
)

// ExportHelp is certfleet export's help text.
const ExportHelp = `
Write the certificates each host of [export] hosts needs into the Ansible
inventory under [export] dir: by default host_files/HOST/CERTIFICATE/ with
cert.pem, chain.pem, fullchain.pem and privkey.pem, the key encrypted in
Ansible Vault format (AES256) with the password of vault_password_file.
Only what changed is rewritten (a key whose plaintext is unchanged keeps its
ciphertext); files an earlier export wrote that no host needs any more are
removed, and nothing else. Prints each file written or removed. With
after_renewal = true, serve does the same at its start and after every new
certificate. See docs/export.md.`

// exportQuiet is how long serve waits after a new certificate before it
// exports: a renewal wave within it is one export (one commit of the
// inventory, not one per certificate).
const exportQuiet = 2 * time.Second

// exportInterval is how often serve exports without a new certificate:
// certificates withdrawn or issued by other instances reach the tree
// within it.
const exportInterval = time.Hour

// newExporter builds the exporter of cfg's [export], reading the vault
// password from its file now (so that a changed password is used at the
// next run).
func newExporter(cfg *config.Config, st certfleet.Store, log *slog.Logger) (*export.Exporter, error) {
	e := cfg.Export
	if e.Dir == "" {
		return nil, fmt.Errorf("%s has no [export] table: add one with dir, vault_password_file and hosts (see docs/export.md)", cfg.File)
	}
	pw, err := readSecretFile("[export] vault_password_file", e.VaultPasswordFile, 1)
	if err != nil {
		return nil, err
	}
	x := &export.Exporter{Store: st, Dir: e.Dir, Layout: e.Layout, VaultPassword: pw, Logger: log}
	for _, name := range e.HostNames() {
		x.Hosts = append(x.Hosts, export.Host{Name: name, Certificates: e.Hosts[name]})
	}
	return x, nil
}

// Export runs certfleet export: cfg's [export] from the store, printing
// each file written or removed, the certificates still waiting for their
// first issuance, and a summary to out.
func Export(ctx context.Context, cfg *config.Config, st certfleet.Store, out io.Writer) error {
	x, err := newExporter(cfg, st, nil)
	if err != nil {
		return err
	}
	rep, err := x.Run(ctx)
	for _, rel := range rep.Written {
		fmt.Fprintf(out, "written  %s\n", rel)
	}
	for _, rel := range rep.Removed {
		fmt.Fprintf(out, "removed  %s\n", rel)
	}
	for _, p := range rep.Pending {
		fmt.Fprintf(out, "pending  %s: no certificate yet\n", p)
	}
	fmt.Fprintf(out, "export to %s: %d file(s) written, %d unchanged, %d removed\n", x.Dir, len(rep.Written), rep.Unchanged, len(rep.Removed))
	return err
}

// runExports exports at once and then after each new certificate
// (debounced by exportQuiet) and every exportInterval, while the
// configuration in force has [export] after_renewal, until ctx ends.
// Failures are logged; the next run tries again.
func (d *Daemon) runExports(ctx context.Context) {
	changed := make(chan struct{}, 1)
	if n, ok := d.Store.(certfleet.Notifier); ok { // certificates issued by other instances
		ch := n.Changes(ctx)
		go func() {
			for range ch {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}()
	}
	log := d.Logger.With("component", "export")
	var x *export.Exporter // kept across runs: it skips decrypting the keys it wrote
	for {
		wait := d.changes.Wait()
		if cfg := d.CurrentConfig(); cfg.Export.AfterRenewal {
			x = d.exportOnce(ctx, cfg, x, log)
		}
		timer := time.NewTimer(exportInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
			continue
		case <-wait:
		case <-changed:
		}
		timer.Stop()
		select { // a renewal wave is one export
		case <-ctx.Done():
			return
		case <-time.After(exportQuiet):
		}
	}
}

// exportOnce runs one export of cfg with prev (nil at first) brought up
// to date with cfg, logs what it did, and returns the exporter for the
// next run.
func (d *Daemon) exportOnce(ctx context.Context, cfg *config.Config, prev *export.Exporter, log *slog.Logger) *export.Exporter {
	x, err := newExporter(cfg, d.Store, log)
	if err == nil {
		if prev != nil {
			prev.Dir, prev.Layout, prev.Hosts, prev.VaultPassword = x.Dir, x.Layout, x.Hosts, x.VaultPassword
			x = prev
		}
		var rep export.Report
		rep, err = x.Run(ctx)
		if len(rep.Written)+len(rep.Removed) > 0 {
			log.Info("exported to the inventory", "dir", x.Dir, "written", len(rep.Written), "unchanged", rep.Unchanged, "removed", len(rep.Removed))
		}
	}
	if err != nil && ctx.Err() == nil {
		log.Error("export failed; trying again after the next certificate or within the hour", certfleet.LogError, err)
	}
	if x == nil {
		return prev
	}
	return x
}
