package agent

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
)

// ensureCSR, in CSR mode, makes a new key and submits its CSR when the host
// has no certificate, when the installed one lacks a configured name, or
// when the key in use is older than RenewFraction of its certificate's
// lifetime. The new key waits in the state directory (mode 0600) until
// its certificate is issued; only then are both installed, key first. A
// CSR the server did not take is submitted again at the next sync.
func (w *watcher) ensureCSR(ctx context.Context, st *state) error {
	pending := w.pendingKeyPath()
	if _, err := os.Stat(pending); err == nil {
		if st.CSRSubmitted {
			return nil
		}
		return w.submitCSR(ctx, st)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pending key: %w", err)
	}
	why := w.needNewKey(st)
	if why == "" {
		return nil
	}
	key, err := certfleet.GenerateKey(w.c.KeyType)
	if err != nil {
		return fmt.Errorf("make key for %s: %w", w.c.Name, err)
	}
	keyPEM, err := certfleet.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(w.a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if _, err := deploy.WriteFileAtomic(pending, keyPEM, 0o600, "", ""); err != nil {
		return fmt.Errorf("save new key of %s: %w", w.c.Name, err)
	}
	st.PendingCreated, st.CSRSubmitted = w.a.cfg.Now(), false
	if err := w.saveState(*st); err != nil {
		return err
	}
	w.a.log.Info("new key made for a CSR", certfleet.LogIdentifier, w.c.Name, "reason", why, certfleet.LogKeyType, string(w.c.KeyType))
	return w.submitCSR(ctx, st)
}

// needNewKey says why a new key is needed, or "".
func (w *watcher) needNewKey(st *state) string {
	keyPEM := readKey(w.c.Files.Key)
	if keyPEM == nil {
		keyPEM = readKey(w.c.Files.Combined)
	}
	if keyPEM == nil {
		return "no key installed"
	}
	leaf := w.installedLeaf()
	if leaf == nil || !keyMatches(keyPEM, leaf) {
		return "no certificate installed for the key"
	}
	for _, n := range w.c.Identifiers {
		if leaf.VerifyHostname(n) != nil {
			return "the certificate lacks " + n
		}
	}
	created := st.KeyCreated
	if created.IsZero() {
		created = leaf.NotBefore
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if w.a.cfg.Now().Sub(created) >= time.Duration(float64(life)*w.c.RenewFraction) {
		return "key rotation due"
	}
	return ""
}

// installedLeaf reads the certificate on disk (Fullchain, Cert or Combined).
func (w *watcher) installedLeaf() *x509.Certificate {
	w.mu.Lock()
	leaf := w.installed
	w.mu.Unlock()
	if leaf != nil {
		return leaf
	}
	for _, p := range []string{w.c.Files.Fullchain, w.c.Files.Cert, w.c.Files.Combined} {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if chain, err := certfleet.ParseChain(b); err == nil {
			return chain[0]
		}
	}
	return nil
}

func (w *watcher) submitCSR(ctx context.Context, st *state) error {
	keyPEM, err := os.ReadFile(w.pendingKeyPath())
	if err != nil {
		return fmt.Errorf("pending key: %w", err)
	}
	key, err := certfleet.ParsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("pending key %s: %w", w.pendingKeyPath(), err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: w.c.Identifiers[0]}}
	for _, n := range w.c.Identifiers {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if !slices.Contains(w.c.Identifiers, w.c.Name) {
		return fmt.Errorf("identifiers %v of %s do not include the name itself", w.c.Identifiers, w.c.Name)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return fmt.Errorf("make CSR for %s: %w", w.c.Name, err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if _, err := w.a.cfg.Client.SubmitCSR(ctx, w.c.Name, csrPEM); err != nil {
		return fmt.Errorf("submit CSR for %s: %w", w.c.Name, err)
	}
	st.CSRSubmitted = true
	w.a.log.Info("CSR submitted", certfleet.LogIdentifier, w.c.Name)
	return w.saveState(*st)
}

// localKeyFor returns the key of ours that leaf certifies: the installed
// key, or the pending one (fromPending). nil when neither matches.
func (w *watcher) localKeyFor(leaf *x509.Certificate) (keyPEM []byte, fromPending bool, err error) {
	if w.a.cfg.StateDir != "" {
		if k := readKey(w.pendingKeyPath()); k != nil && keyMatches(k, leaf) {
			return k, true, nil
		}
	}
	for _, p := range []string{w.c.Files.Key, w.c.Files.Combined} {
		if k := readKey(p); k != nil && keyMatches(k, leaf) {
			return k, false, nil
		}
	}
	return nil, false, nil
}
