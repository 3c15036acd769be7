package deploy

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
)

// Contents of a copy (Copy.Content): what one extra file holds.
const (
	ContentCombined  = "combined"  // private key, then leaf and chain (HAProxy)
	ContentFullchain = "fullchain" // leaf and chain
	ContentCert      = "cert"      // leaf only
	ContentChain     = "chain"     // chain only
	ContentKey       = "key"       // private key only
)

// Copy is one extra file a certificate is written to, beside (or instead
// of) the certbot layout of Write: a combined PEM for HAProxy, a full chain
// at the path a server's configuration names.
type Copy struct {
	// Path is the absolute file path.
	Path string
	// Content is what the file holds: one of the Content constants.
	Content string
	// Mode is the file's permission bits, applied as given.
	Mode os.FileMode
	// Owner and Group own the file (names or numeric ids; "" leaves that
	// id as the writing process makes it).
	Owner, Group string
}

// HasKey reports whether the file holds the private key.
func (c Copy) HasKey() bool { return c.Content == ContentCombined || c.Content == ContentKey }

// WriteCopies writes the copies of certificate name with WriteFileAtomic:
// the files holding the private key first, so that a server reading a key
// and a certificate from two copies never sees a new certificate beside an
// old key. A file already up to date is left alone. The directories written
// to are synced before it returns, so the renames are durable before any
// command runs. It reports whether any file was written. Errors name the
// certificate and never contain key material.
func WriteCopies(name string, copies []Copy, iss certfleet.Issuance) (changed bool, err error) {
	if len(copies) == 0 {
		return false, nil
	}
	leafPEM, chainPEM, err := iss.SplitChain()
	if err != nil {
		return false, fmt.Errorf("copy %s: %w", name, err)
	}
	if slices.ContainsFunc(copies, Copy.HasKey) {
		if err := keyMatches(iss); err != nil {
			return false, fmt.Errorf("copy %s: %w", name, err)
		}
	}
	copies = slices.Clone(copies)
	slices.SortStableFunc(copies, func(a, b Copy) int {
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
		case ContentCombined:
			data = slices.Concat(iss.KeyPEM, full)
		case ContentFullchain:
			data = full
		case ContentCert:
			data = leafPEM
		case ContentChain:
			data = chainPEM
		case ContentKey:
			data = iss.KeyPEM
		default:
			return changed, fmt.Errorf("copy %s to %s: unknown content %q", name, cp.Path, cp.Content)
		}
		written, err := WriteFileAtomic(cp.Path, data, cp.Mode, cp.Owner, cp.Group)
		if err != nil {
			return changed, fmt.Errorf("copy %s: %w", name, err)
		}
		if written {
			changed = true
			if d := filepath.Dir(cp.Path); !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	for _, d := range dirs { // the renames are durable before commands run
		if err := SyncDir(d); err != nil {
			return changed, fmt.Errorf("copy %s: sync %s: %w", name, d, err)
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

// CopyCommandEnv is the environment of the commands run after the copies
// of a certificate kept only in the store (no Write directory) were
// written: the inherited environment (less certfleet.SecretEnv) plus
// CERTFLEET_CERTIFICATE, CERTFLEET_KEY_TYPE, CERTFLEET_NAMES,
// CERTFLEET_COPY_PATHS (space-separated) and CERTFLEET_SERIAL.
func CopyCommandEnv(name string, copies []Copy, iss certfleet.Issuance) []string {
	paths := make([]string, 0, len(copies))
	for _, cp := range copies {
		paths = append(paths, cp.Path)
	}
	return certfleet.ChildEnv(os.Environ(),
		"CERTFLEET_CERTIFICATE="+name,
		"CERTFLEET_KEY_TYPE="+string(iss.KeyType),
		"CERTFLEET_NAMES="+strings.Join(certfleet.IdentifierValues(iss.Identifiers), " "),
		"CERTFLEET_COPY_PATHS="+strings.Join(paths, " "),
		"CERTFLEET_SERIAL="+certfleet.FormatSerial(iss.Serial),
	)
}
