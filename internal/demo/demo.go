// Package demo is certfleet's offline quickstart, what certfleet demo runs:
// an embedded Pebble test CA on loopback whose validator reaches
// certfleet's own responders, a config file written for it, and a daemon
// that issues three certificates (ECDSA, RSA over tls-alpn-01, and a
// multi-name dual one) through real validation, writes their files, prints
// where they are, and, unless Options.Once, keeps serving and renewing
// with the HTTP API and the dashboard on Options.Listen.
//
// It is internal: the test CA and its certificates are for trying
// certfleet only, and the demo's layout is not an interface. It parses no
// flags and reads no environment (cmd sets Pebble's PEBBLE_VA_NOSLEEP
// before calling Run); the application is the daemon package's.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/status"
)

// Options are the demo's knobs (certfleet demo's flags).
type Options struct {
	// Dir holds the state, the config and the certificate files; what an
	// earlier demo wrote there is removed first (its test CA is gone).
	Dir string
	// Once issues, prints a summary and returns; else Run serves until
	// ctx ends.
	Once bool
	// Validity is the lifetime of the test CA's certificates (renewed at
	// half of it).
	Validity time.Duration
	// Verbose writes "debug" as the config's log level, else "info".
	Verbose bool
	// Listen is the address of the HTTP API while the demo serves ("" for
	// none).
	Listen string
	// Out receives what the demo says.
	Out io.Writer
	// Logger returns the daemon's logger for the written config's [log]
	// table.
	Logger func(config.Log) *slog.Logger
	// Daemon are the daemon options (the master key from the environment,
	// the version); Run sets the logger, the responders and their
	// listeners.
	Daemon daemon.Options
}

// Run runs the demo in o.Dir.
func Run(ctx context.Context, o Options) error {
	stdout := o.Out
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("create demo directory: %w", err)
	}
	// The embedded CA is new at every run, so certificates of an earlier
	// run chain to a root that no longer exists: start over. Only what the
	// demo itself writes is removed.
	if _, err := os.Stat(filepath.Join(abs, "certfleet.db")); err == nil {
		fmt.Fprintf(stdout, "certfleet demo: removing the previous demo's state in %s (its test CA is gone)\n", abs)
		for _, name := range []string{"certfleet.db", "certfleet.db-wal", "certfleet.db-shm", "live", "certfleet.toml", "test-ca-roots.pem", "test-ca-api-root.pem"} {
			if err := os.RemoveAll(filepath.Join(abs, name)); err != nil {
				return fmt.Errorf("remove previous demo state: %w", err)
			}
		}
	}

	// The responders listen on loopback ports of our choosing, and the
	// test CA is told to validate against exactly those ports.
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for http-01 on loopback: %w", err)
	}
	defer httpLn.Close()
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for tls-alpn-01 on loopback: %w", err)
	}
	defer tlsLn.Close()

	level := "info"
	if o.Verbose {
		level = "debug"
	}
	fmt.Fprintf(stdout, "certfleet demo: starting an embedded test CA (Pebble) on loopback…\n")
	ca, err := pebbleca.Start(ctx, pebbleca.Config{
		HTTPPort: httpLn.Addr().(*net.TCPAddr).Port,
		TLSPort:  tlsLn.Addr().(*net.TCPAddr).Port,
		Profiles: map[string]pebbleca.Profile{pebbleca.DefaultProfile: {Description: "certfleet demo", ValidityPeriod: o.Validity}},
	})
	if err != nil {
		return fmt.Errorf("start the embedded test CA: %w", err)
	}
	defer ca.Close()

	files := map[string][]byte{
		"test-ca-api-root.pem": ca.TLSRootPEM(), // trust for the CA's own HTTPS
		"test-ca-roots.pem":    ca.RootsPEM(),   // what issued certificates chain to
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(abs, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	// The quickstart encrypts keys at rest: a master key made on the first
	// run, kept across runs (like a real one, it must outlive the store).
	masterKey := filepath.Join(abs, "master.key")
	if _, err := os.Stat(masterKey); errors.Is(err, os.ErrNotExist) {
		key, err := seal.GenerateMasterKey()
		if err != nil {
			return err
		}
		err = seal.WriteMasterKeyFile(masterKey, key)
		clear(key)
		if err != nil {
			return err
		}
	}
	cfgPath := filepath.Join(abs, "certfleet.toml")
	if err := writeDemoConfig(cfgPath, demoParams{
		Directory: ca.DirectoryURL(), Roots: filepath.Join(abs, "test-ca-api-root.pem"),
		HTTP01: httpLn.Addr().String(), TLSALPN01: tlsLn.Addr().String(), Level: level, DNS: ca.DNS().Addr(),
		HTTPPort: httpLn.Addr().(*net.TCPAddr).Port, TLSPort: tlsLn.Addr().(*net.TCPAddr).Port,
	}); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("the demo wrote a config it cannot read (a bug): %w", err)
	}
	opts := o.Daemon
	opts.Logger, opts.StartResponders = o.Logger(cfg.Log), true
	opts.HTTP01Listener, opts.TLSALPN01Listener = httpLn, tlsLn
	d, err := daemon.Open(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer d.Close()

	fmt.Fprintf(stdout, "test CA:   %s\nresponders: http-01 on %s, tls-alpn-01 on %s\nconfig:    %s\nissuing…\n\n",
		ca.DirectoryURL(), d.HTTP01Addr, d.TLSALPN01Addr, cfgPath)
	rep, err := d.IssueOnce(ctx)
	status.Pass(stdout, rep)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := printDemoSummary(ctx, stdout, d, abs, cfgPath); err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("%d certificate(s) failed; see the errors above", rep.Failed+rep.DeployFailed)
	}
	if o.Once {
		return nil
	}
	if o.Listen != "" {
		if err := startDemoAPI(ctx, d, abs, o.Listen, stdout); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "\nServing and renewing (certificates live %s and renew at half-life). Press Ctrl-C to stop.\n", o.Validity)
	return d.Serve(ctx)
}

type demoParams struct {
	Directory, Roots, HTTP01, TLSALPN01, Level, DNS string
	HTTPPort, TLSPort                               int
}

var demoConfig = template.Must(template.New("demo").Parse(`# Written by "certfleet demo" for its embedded test CA; rewritten at every run.
# A real configuration looks the same with a real CA: see examples/certfleet.toml.
state = "certfleet.db"
# Private keys in the state are encrypted with this key (docs/keys-at-rest.md).
master_key_file = "master.key"

[log]
level = "{{.Level}}"

[ca]
directory = "{{.Directory}}"
trusted_roots = "{{.Roots}}"
email = "demo@certfleet.test"

[http01]
listen = "{{.HTTP01}}"

[tlsalpn01]
listen = "{{.TLSALPN01}}"

# Names are tested before they are ordered (docs/readiness.md), resolved
# and probed as the embedded CA sees them.
[self_test]
resolvers = ["{{.DNS}}"]
http_port = {{.HTTPPort}}
tls_port = {{.TLSPort}}

[defaults]
output_dir = "live"

[[certificate]]
name = "web"
identifiers = ["demo.certfleet.test"]
key_types = ["ecdsa-p256"]
challenge = "http-01"

[[certificate]]
name = "mail"
identifiers = ["mail.certfleet.test"]
key_types = ["rsa2048"]
challenge = "tls-alpn-01"

[[certificate]]
name = "shop"
identifiers = ["shop.certfleet.test", "www.shop.certfleet.test", "api.shop.certfleet.test", "127.0.0.1"]
key_types = ["ecdsa-p256", "rsa2048"]
challenge = "http-01"
`))

func writeDemoConfig(path string, p demoParams) error {
	var b strings.Builder
	if err := demoConfig.Execute(&b, p); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write demo config: %w", err)
	}
	return nil
}

// printDemoSummary says where each certificate's files are and how to look.
func printDemoSummary(ctx context.Context, w io.Writer, d *daemon.Daemon, dir, cfgPath string) error {
	fmt.Fprintln(w, "Certificates:")
	var example string
	for _, c := range d.Config.Certificates {
		for _, kt := range c.Spec.KeyTypes {
			job, err := d.Store.Job(ctx, certfleet.JobKey{Spec: c.Spec.Name, KeyType: kt})
			if err != nil {
				return fmt.Errorf("certificate %s: %w", c.Spec.Name, err)
			}
			if job.CurrentID == 0 {
				fmt.Fprintf(w, "  %-5s %-10s not issued: %s\n", c.Spec.Name, kt, status.OneLine(job.LastError, 200))
				continue
			}
			iss, err := d.Store.Issuance(ctx, job.CurrentID)
			if err != nil {
				return fmt.Errorf("certificate %s: %w", c.Spec.Name, err)
			}
			files := deploy.KeyTypeDir(c.Output.Dir, c.Spec, kt)
			rel, _ := filepath.Rel(dir, files)
			fmt.Fprintf(w, "  %-5s %-10s names: %s\n        valid until %s, serial %s\n        files: %s/{cert,chain,fullchain,privkey}.pem\n",
				c.Spec.Name, kt, strings.Join(certfleet.IdentifierValues(c.Spec.Identifiers), ", "),
				iss.NotAfter.UTC().Format(time.RFC3339), certfleet.FormatSerial(iss.Serial), filepath.Join(filepath.Base(dir), rel))
			if example == "" {
				example = filepath.Join(files, "cert.pem")
			}
		}
	}
	fmt.Fprintf(w, `
Inspect them:
  openssl x509 -in %[1]s -noout -subject -issuer -dates -ext subjectAltName
  openssl verify -CAfile %[2]s -untrusted %[3]s %[1]s
  certfleet status -config %[4]s
`, example, filepath.Join(dir, "test-ca-roots.pem"), filepath.Join(filepath.Dir(example), "chain.pem"), cfgPath)
	return nil
}

// startDemoAPI serves the API for the demo on listen, writes an admin
// token to dir/admin-token and prints how to use it.
func startDemoAPI(ctx context.Context, d *daemon.Daemon, dir, listen string, w io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("demo API: listen on %q (--listen): %w", listen, err)
	}
	addr, _, err := d.StartAPI(ctx, daemon.APIOptions{Listener: ln})
	if err != nil {
		ln.Close()
		return err
	}
	store, err := daemon.APIStore(d.Store)
	if err != nil {
		return err
	}
	_, secret, err := daemon.CreateToken(ctx, store, "certfleet demo admin", []string{"*"}, []certfleet.Permission{certfleet.PermAdmin}, false)
	if err != nil {
		return fmt.Errorf("demo API: create admin token: %w", err)
	}
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo API: write %s: %w", tokenFile, err)
	}
	fmt.Fprintf(w, `
API: http://%[1]s (admin token in %[2]s)
  TOKEN=$(cat %[2]s)
  curl -H "Authorization: Bearer $TOKEN" http://%[1]s/v1/names/demo.certfleet.test/fullchain
  curl -X PUT -H "Authorization: Bearer $TOKEN" http://%[1]s/v1/names/new.certfleet.test
  curl -H "Authorization: Bearer $TOKEN" "http://%[1]s/v1/names/new.certfleet.test/fullchain?wait=30s"
  curl -H "Authorization: Bearer $TOKEN" http://%[1]s/v1/certificates
Dashboard: http://%[1]s/dashboard/ (log in with the token in %[2]s)
`, addr, tokenFile)
	return nil
}
