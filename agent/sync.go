package agent

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/httpapi"
)

// watcher keeps one Certificate in sync. Only its own goroutine calls
// sync, except in Once.
type watcher struct {
	a  *Agent
	c  Certificate
	id string // file-name-safe identity, for the state directory

	mu sync.Mutex // guards the fields below (read by tests through Agent)
	// etag is the served full chain's ETag whose files are on disk.
	etag string
	// installed is the leaf on disk (nil: nothing yet).
	installed   *x509.Certificate
	installedAt time.Time
	commands    []certfleet.AgentCommand
	lastErr     string
	mem         state // the state, without a StateDir
}

// state is what a watcher keeps in the state directory.
type state struct {
	// CommandsOK is the fingerprint of the certificate whose commands all
	// succeeded last.
	CommandsOK string `json:"commands_ok"`
	// KeyCreated is when the key in use (CSR mode) was made.
	KeyCreated time.Time `json:"key_created,omitzero"`
	// PendingCreated is when the pending key (CSR mode) was made, and
	// CSRSubmitted whether the server accepted its CSR.
	PendingCreated time.Time `json:"pending_created,omitzero"`
	CSRSubmitted   bool      `json:"csr_submitted,omitempty"`
	InstalledAt    time.Time `json:"installed_at,omitzero"`
}

func (w *watcher) statePath() string {
	if w.a.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(w.a.cfg.StateDir, w.id+".json")
}

func (w *watcher) pendingKeyPath() string {
	return filepath.Join(w.a.cfg.StateDir, w.id+".pending-key.pem")
}

func (w *watcher) loadState() (state, error) {
	var st state
	p := w.statePath()
	if p == "" {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.mem, nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	} else if err != nil {
		return st, fmt.Errorf("read agent state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("agent state %s is corrupt (%v); remove it to start afresh", p, err)
	}
	return st, nil
}

func (w *watcher) saveState(st state) error {
	p := w.statePath()
	if p == "" {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.mem = st
		return nil
	}
	b, _ := json.Marshal(st)
	if _, err := deploy.WriteFileAtomic(p, b, 0o600, "", ""); err != nil {
		return fmt.Errorf("save agent state: %w", err)
	}
	return deploy.SyncDir(filepath.Dir(p))
}

// sync makes the files match the server's current certificate. wait > 0
// long-polls for a change first; full ignores the ETag (every file is
// compared with the server's copy) and checks in with the server.
func (w *watcher) sync(ctx context.Context, wait time.Duration, full bool) error {
	err := w.syncOnce(ctx, wait, full)
	if err != nil && ctx.Err() == nil {
		w.setErr(err)
		// Tell the server, when it can be told; the caller logs err.
		_ = w.report(ctx)
		return err
	}
	if full && err == nil {
		w.setErr(nil)
		return w.report(ctx)
	}
	return err
}

func (w *watcher) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastErr = ""
	if err != nil {
		w.lastErr = err.Error()
	}
}

func (w *watcher) syncOnce(ctx context.Context, wait time.Duration, full bool) error {
	client := w.a.cfg.Client
	st, err := w.loadState()
	if err != nil {
		return err
	}
	if w.c.CSR {
		if err := w.ensureCSR(ctx, &st); err != nil {
			return err
		}
	}
	w.mu.Lock()
	etag := w.etag
	w.mu.Unlock()
	if full {
		etag = ""
	}
	for attempt := 0; ; attempt++ {
		fc, err := client.Fetch(ctx, w.c.Name, "fullchain", httpapi.FetchOptions{Key: w.familyParam(), Wait: wait, ETag: etag})
		var prob *httpapi.Problem
		if errors.As(err, &prob) && prob.Status == http.StatusNotFound {
			// Not issued yet: nothing to install.
			return nil
		} else if err != nil {
			return fmt.Errorf("fetch %s: %w", w.c.Name, err)
		}
		if fc.NotModified {
			return w.retryCommands(ctx, &st)
		}
		chain, err := certfleet.ParseChain(fc.Data)
		if err != nil {
			return fmt.Errorf("certificate of %s from the server: %w", w.c.Name, err)
		}
		leaf := chain[0]
		var keyPEM []byte
		var fromPending bool
		if w.c.CSR {
			keyPEM, fromPending, err = w.localKeyFor(leaf)
			if err != nil {
				return err
			}
			if keyPEM == nil {
				// The server's certificate is not for a key of ours (the
				// CSR with our new key is not issued yet): keep ours
				// and wait for the next change.
				w.mu.Lock()
				w.etag = fc.ETag
				w.mu.Unlock()
				return nil
			}
		} else if w.c.Files.needsKey() {
			kp, err := client.Fetch(ctx, w.c.Name, "privkey", httpapi.FetchOptions{Key: w.familyParam()})
			if err != nil {
				return fmt.Errorf("fetch key of %s: %w", w.c.Name, err)
			}
			if !keyMatches(kp.Data, leaf) {
				// Renewed between the two requests: fetch both again.
				if attempt < 3 {
					etag, wait = "", 0
					continue
				}
				return fmt.Errorf("the server's key for %s does not match its certificate", w.c.Name)
			}
			keyPEM = kp.Data
		}
		changed, err := w.install(fc.Data, leaf, keyPEM)
		if err != nil {
			return err
		}
		now := w.a.cfg.Now()
		if fromPending {
			st.KeyCreated, st.PendingCreated, st.CSRSubmitted = st.PendingCreated, time.Time{}, false
			if err := os.Remove(w.pendingKeyPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove installed pending key: %w", err)
			}
		}
		w.mu.Lock()
		w.etag, w.installed = fc.ETag, leaf
		if changed || w.installedAt.IsZero() {
			if changed || st.InstalledAt.IsZero() {
				st.InstalledAt = now
			}
			w.installedAt = st.InstalledAt
		}
		w.mu.Unlock()
		if changed {
			w.a.log.Info("certificate installed", certfleet.LogIdentifier, w.c.Name,
				certfleet.LogSerial, certfleet.SerialString(leaf.SerialNumber), certfleet.LogNotAfter, leaf.NotAfter)
		}
		if err := w.saveState(st); err != nil {
			return err
		}
		cmdErr := w.runCommands(ctx, &st, changed)
		if changed || cmdErr != nil {
			if err := w.report(ctx); err != nil && cmdErr == nil {
				return err
			}
		}
		return cmdErr
	}
}

func (w *watcher) familyParam() string {
	if w.c.CSR {
		return ""
	}
	return w.c.Key
}

// install writes the files; changed reports whether any was written. The
// key goes first, then the files holding the certificate, so a service
// never finds a certificate whose key is not there yet.
func (w *watcher) install(fullchain []byte, leaf *x509.Certificate, keyPEM []byte) (changed bool, err error) {
	f := w.c.Files
	leafPEM, chainPEM, err := certfleet.Issuance{ChainPEM: fullchain}.SplitChain()
	if err != nil {
		return false, fmt.Errorf("certificate of %s: %w", w.c.Name, err)
	}
	type file struct {
		path string
		data []byte
		mode os.FileMode
	}
	var files []file
	if f.Key != "" {
		files = append(files, file{f.Key, keyPEM, w.c.KeyMode})
	}
	if f.Combined != "" {
		files = append(files, file{f.Combined, append(append([]byte(nil), keyPEM...), fullchain...), w.c.KeyMode})
	}
	if f.Cert != "" {
		files = append(files, file{f.Cert, leafPEM, w.c.CertMode})
	}
	if f.Chain != "" {
		files = append(files, file{f.Chain, chainPEM, w.c.CertMode})
	}
	if f.Fullchain != "" {
		files = append(files, file{f.Fullchain, fullchain, w.c.CertMode})
	}
	dirs := map[string]bool{}
	for _, fl := range files {
		written, err := deploy.WriteFileAtomic(fl.path, fl.data, fl.mode, w.c.Owner, w.c.Group)
		if err != nil {
			return changed, fmt.Errorf("install %s: %w", w.c.Name, err)
		}
		if written {
			changed = true
			dirs[filepath.Dir(fl.path)] = true
		}
	}
	for d := range dirs {
		if err := deploy.SyncDir(d); err != nil {
			return changed, fmt.Errorf("install %s: %w", w.c.Name, err)
		}
	}
	return changed, nil
}

// runCommands runs the commands when files changed or when they have not
// yet all succeeded for the installed certificate.
func (w *watcher) runCommands(ctx context.Context, st *state, changed bool) error {
	w.mu.Lock()
	leaf := w.installed
	w.mu.Unlock()
	if leaf == nil {
		return nil
	}
	fp := certfleet.Fingerprint(leaf)
	if !changed && st.CommandsOK == fp {
		return nil
	}
	if len(w.c.Commands) == 0 {
		if st.CommandsOK != fp {
			st.CommandsOK = fp
			return w.saveState(*st)
		}
		return nil
	}
	if pw := w.a.cfg.PrintCommands; pw != nil {
		for _, argv := range w.c.Commands {
			q := make([]string, len(argv))
			for i, a := range argv {
				q[i] = strconv.Quote(a)
			}
			fmt.Fprintf(pw, "test mode: not running for %s: [%s] (set [staging] run_commands = true to run)\n", w.c.Name, strings.Join(q, ", "))
		}
		st.CommandsOK = fp
		return w.saveState(*st)
	}
	env := w.env(leaf)
	dir := filepath.Dir(w.c.Files.all()[0])
	var results []certfleet.AgentCommand
	var errs []error
	var dw deploy.Writer
	dw.Logger = w.a.log
	for _, argv := range w.c.Commands {
		cr := dw.RunCommand(ctx, argv, env, dir, w.c.CommandTimeout)
		ac := certfleet.AgentCommand{Argv: argv, ExitCode: cr.ExitCode, RanAt: w.a.cfg.Now()}
		if cr.Err != nil {
			ac.Error = cr.Err.Error()
			errs = append(errs, cr.Err)
		}
		results = append(results, ac)
	}
	w.mu.Lock()
	w.commands = results
	w.mu.Unlock()
	if len(errs) > 0 {
		// CommandsOK keeps the old fingerprint: they run again at the
		// next sync (and the next change).
		return fmt.Errorf("commands for %s: %w", w.c.Name, errors.Join(errs...))
	}
	st.CommandsOK = fp
	return w.saveState(*st)
}

// retryCommands re-runs commands that failed for the installed
// certificate (nothing changed on the server).
func (w *watcher) retryCommands(ctx context.Context, st *state) error {
	w.mu.Lock()
	leaf := w.installed
	w.mu.Unlock()
	if leaf == nil || st.CommandsOK == certfleet.Fingerprint(leaf) {
		return nil
	}
	err := w.runCommands(ctx, st, false)
	if rerr := w.report(ctx); rerr != nil && err == nil {
		return rerr
	}
	return err
}

func (w *watcher) env(leaf *x509.Certificate) []string {
	f := w.c.Files
	kt, _ := certfleet.KeyTypeOf(leaf.PublicKey)
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return certfleet.ChildEnv(os.Environ(),
		"CERTFLEET_NAME="+w.c.Name,
		"CERTFLEET_NAMES="+strings.Join(names, " "),
		"CERTFLEET_KEY_TYPE="+string(kt),
		"CERTFLEET_SERIAL="+serialHex(leaf),
		"CERTFLEET_FINGERPRINT="+certfleet.Fingerprint(leaf),
		"CERTFLEET_NOT_AFTER="+leaf.NotAfter.UTC().Format(time.RFC3339),
		"CERTFLEET_CERT_PATH="+f.Cert,
		"CERTFLEET_CHAIN_PATH="+f.Chain,
		"CERTFLEET_FULLCHAIN_PATH="+f.Fullchain,
		"CERTFLEET_KEY_PATH="+f.Key,
		"CERTFLEET_COMBINED_PATH="+f.Combined,
	)
}

// report tells the server what is installed.
func (w *watcher) report(ctx context.Context) error {
	w.mu.Lock()
	req := httpapi.ReportRequest{Name: w.c.Name, Commands: w.commands, Error: w.lastErr, InstalledAt: w.installedAt}
	if leaf := w.installed; leaf != nil {
		kt, _ := certfleet.KeyTypeOf(leaf.PublicKey)
		req.KeyType, req.Serial, req.Fingerprint, req.NotAfter = string(kt), serialHex(leaf), certfleet.Fingerprint(leaf), leaf.NotAfter
	} else if w.c.CSR {
		req.KeyType = string(w.c.KeyType)
	}
	w.mu.Unlock()
	if err := w.a.cfg.Client.Report(ctx, w.a.cfg.Name, req); err != nil {
		var prob *httpapi.Problem
		if errors.As(err, &prob) && prob.Status == http.StatusNotFound && req.Fingerprint == "" {
			return nil // not managed (yet): nothing to report on
		}
		return fmt.Errorf("report %s: %w", w.c.Name, err)
	}
	return nil
}

func serialHex(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

// keyMatches reports whether keyPEM is the private key of leaf.
func keyMatches(keyPEM []byte, leaf *x509.Certificate) bool {
	key, err := certfleet.ParsePrivateKey(keyPEM)
	if err != nil {
		return false
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(leaf.PublicKey)
}

// readKey reads a PEM private key from path (the first private key block
// of a combined file); nil when there is none.
func readKey(path string) []byte {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return pem.EncodeToMemory(block)
		}
	}
}
