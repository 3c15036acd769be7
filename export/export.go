// Package export writes the certificates each host needs into a
// configuration-management tree, for tools that push files to hosts
// themselves: an Ansible inventory's host_files/<host>/... (or a layout the
// operator chooses), certificates in PEM, private keys encrypted in Ansible
// Vault format (AES256, as ansible-vault writes it; vault.go), so the tree
// can live in Git. A run rewrites only what changed (a key whose plaintext
// is unchanged keeps its ciphertext, so the tree's history shows real
// changes only), and removes the files it wrote earlier that no host needs
// any more, never anything else. docs/export.md is the operator's guide.
//
// Which certificates a host needs is the operator's list of name patterns
// per host (Host): the certificates whose name or one of whose identifiers
// matches one of them.
//
// It does not push anything to hosts (Ansible does; certfleet agent is the
// pull alternative), nor write the certificates' own output directories
// (package deploy), nor decide when to run (cmd runs it on demand, the
// daemon after each new certificate).
package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/certfleet/certfleet"
)

// DefaultLayout is where a certificate's files go: the host_files
// convention of Ansible inventories (a play copies
// host_files/{{ inventory_hostname }}/web/fullchain.pem to the host).
const DefaultLayout = "host_files/{host}/{certificate}/{file}"

// The files written per certificate (and key type), certbot's names.
// The key is the only one encrypted.
const (
	FileCert      = "cert.pem"
	FileChain     = "chain.pem"
	FileFullchain = "fullchain.pem"
	FileKey       = "privkey.pem"
)

// ManifestName is the file in Dir that lists the files an export wrote:
// only those are ever replaced without question or removed.
const ManifestName = ".certfleet-export.json"

// lockName is the file in Dir that runs lock, so the daemon's run after a
// renewal and an operator's certfleet export never interleave.
const lockName = ".certfleet-export.lock"

// Host is one host of the inventory and the certificates it needs.
type Host struct {
	// Name is the host's inventory name (see certfleet.ValidateAgentName).
	Name string
	// Certificates are shell patterns (path.Match; '*' matches dots too):
	// a certificate is needed when its name or one of its identifiers
	// matches one.
	Certificates []string
}

// Needs reports whether h needs spec.
func (h Host) Needs(spec certfleet.CertificateSpec) bool {
	for _, p := range h.Certificates {
		if ok, _ := path.Match(p, spec.Name); ok {
			return true
		}
		for _, id := range spec.Identifiers {
			if ok, _ := path.Match(p, id.Value); ok {
				return true
			}
		}
	}
	return false
}

// Store is what an export reads: the specs, their jobs' current
// issuances, and the issuances with their keys.
type Store interface {
	Specs(ctx context.Context, f certfleet.SpecFilter) ([]certfleet.CertificateSpec, error)
	Job(ctx context.Context, key certfleet.JobKey) (certfleet.Job, error)
	Issuance(ctx context.Context, id int64) (certfleet.Issuance, error)
}

// Exporter writes the tree. Set the fields and call Run; it may run again
// (the fields may change between runs), and runs of one Exporter take
// turns. One that runs again skips decrypting the key files it wrote or
// read before, when they are as it left them.
type Exporter struct {
	Store Store
	// Dir is the root of the tree (the inventory's directory). Required.
	Dir string
	// Layout places each file under Dir (CheckLayout). Default
	// DefaultLayout.
	Layout string
	// Hosts are the hosts and what they need.
	Hosts []Host
	// VaultPassword encrypts the keys. Required; never logged.
	VaultPassword []byte
	// Logger receives a record per file written or removed; nil discards.
	Logger *slog.Logger

	mu    sync.Mutex            // serialises Run; guards known
	known map[string]knownVault // vault files this Exporter wrote or read, by path under Dir
}

// knownVault remembers a vault file's content and its plaintext by their
// SHA-256, and the password's, so that a later run in the same process
// knows an unchanged file's plaintext without decrypting it: PBKDF2's
// 10000 iterations cost milliseconds per key, every run. Only sums are
// kept, and only in memory.
type knownVault struct {
	file, plain, password [sha256.Size]byte
}

// Report is what a run did; paths are relative to Dir, sorted.
type Report struct {
	Written   []string // new or changed
	Unchanged int
	Removed   []string // written by an earlier run, needed no more
	// Pending names the certificates (name/key type) a host needs that
	// have no certificate yet.
	Pending []string
}

// file is one file a run wants in the tree.
type file struct {
	rel   string
	data  []byte // plaintext
	vault bool   // write it encrypted
}

// Run writes what each host needs, removes what an earlier run wrote that
// is needed no more, and records the files in the manifest. Files it cannot
// write are errors (joined, the rest is still written); then nothing is
// removed, so a failing run never takes a file away.
func (x *Exporter) Run(ctx context.Context) (Report, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var rep Report
	if x.Dir == "" {
		return rep, errors.New("export: no directory given")
	}
	if len(x.VaultPassword) == 0 {
		return rep, errors.New("export: no vault password: the keys cannot be encrypted")
	}
	layout := x.Layout
	if layout == "" {
		layout = DefaultLayout
	}
	if err := CheckLayout(layout); err != nil {
		return rep, err
	}
	if err := os.MkdirAll(x.Dir, 0o755); err != nil {
		return rep, fmt.Errorf("export: %w", err)
	}
	unlock, err := lock(filepath.Join(x.Dir, lockName))
	if err != nil {
		return rep, fmt.Errorf("export %s: lock: %w", x.Dir, err)
	}
	defer unlock()

	want, pending, err := x.plan(ctx, layout)
	if err != nil {
		return rep, err
	}
	rep.Pending = pending
	old, err := readManifest(x.Dir)
	if err != nil {
		return rep, err
	}
	var errs []error
	kept := make(map[string]bool)
	for _, f := range want {
		changed, err := x.put(f, old[f.rel])
		switch {
		case err != nil:
			errs = append(errs, err)
			if old[f.rel] {
				kept[f.rel] = true // still ours, whatever it holds
			}
			continue
		case changed:
			rep.Written = append(rep.Written, f.rel)
			x.logger().Info("export: file written", certfleet.LogPath, f.rel)
		default:
			rep.Unchanged++
		}
		kept[f.rel] = true
	}
	if len(errs) == 0 {
		for rel := range old {
			if kept[rel] {
				continue
			}
			if err := x.remove(rel); err != nil {
				errs = append(errs, err)
				kept[rel] = true
				continue
			}
			rep.Removed = append(rep.Removed, rel)
			x.logger().Info("export: file removed: no host needs it", certfleet.LogPath, rel)
		}
	} else {
		for rel := range old {
			kept[rel] = true
		}
	}
	slices.Sort(rep.Written)
	slices.Sort(rep.Removed)
	if err := writeManifest(x.Dir, kept); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// plan lists the files every host needs, in a stable order, and the
// certificates hosts need that have no certificate yet.
func (x *Exporter) plan(ctx context.Context, layout string) ([]file, []string, error) {
	specs, err := x.Store.Specs(ctx, certfleet.SpecFilter{})
	if err != nil {
		return nil, nil, fmt.Errorf("export: list certificates: %w", err)
	}
	var (
		files   []file
		pending []string
		seen    = make(map[string]string) // rel → what it holds, for collisions
	)
	current := make(map[certfleet.JobKey]*certfleet.Issuance)
	for _, h := range x.Hosts {
		if err := certfleet.ValidateAgentName(h.Name); err != nil {
			return nil, nil, fmt.Errorf("export: host: %w", err)
		}
		for _, spec := range specs {
			if !h.Needs(spec) {
				continue
			}
			for _, kt := range spec.KeyTypes {
				jk := certfleet.JobKey{Spec: spec.Name, KeyType: kt}
				iss, ok := current[jk]
				if !ok {
					if iss, err = x.currentIssuance(ctx, jk); err != nil {
						return nil, nil, err
					}
					current[jk] = iss
				}
				if iss == nil {
					pending = append(pending, h.Name+": "+jk.String())
					continue
				}
				leaf, chain, err := iss.SplitChain()
				if err != nil {
					return nil, nil, fmt.Errorf("export: certificate %s: %w", jk, err)
				}
				// The key first, as package deploy writes: a reader between
				// two files sees a new key with an old certificate at
				// worst, never a certificate whose key is not there.
				var contents []file
				if len(iss.KeyPEM) > 0 { // CSR mode: the key is the host's own
					contents = append(contents, file{rel: FileKey, data: iss.KeyPEM, vault: true})
				}
				contents = append(contents, file{rel: FileCert, data: leaf}, file{rel: FileChain, data: chain}, file{rel: FileFullchain, data: iss.ChainPEM})
				for _, f := range contents {
					rel := expand(layout, h.Name, spec, kt, f.rel)
					what := h.Name + " " + jk.String() + " " + f.rel
					if !filepath.IsLocal(filepath.FromSlash(rel)) { // cannot happen: CheckLayout and the names' rules
						return nil, nil, fmt.Errorf("export: layout %q puts %s outside the export directory (%s)", layout, what, rel)
					}
					if prev, dup := seen[rel]; dup {
						return nil, nil, fmt.Errorf("export: layout %q puts %s and %s both at %s; add {host}, {certificate} or {key_type} where they differ", layout, prev, what, rel)
					}
					seen[rel] = what
					f.rel = rel
					files = append(files, f)
				}
			}
		}
	}
	return files, pending, nil
}

// currentIssuance loads jk's current issuance; nil when it has none yet.
func (x *Exporter) currentIssuance(ctx context.Context, jk certfleet.JobKey) (*certfleet.Issuance, error) {
	job, err := x.Store.Job(ctx, jk)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("export: job %s: %w", jk, err)
	}
	if job.CurrentID == 0 {
		return nil, nil
	}
	iss, err := x.Store.Issuance(ctx, job.CurrentID)
	if err != nil {
		return nil, fmt.Errorf("export: certificate %s (issuance %d): %w", jk, job.CurrentID, err)
	}
	return &iss, nil
}

// CheckLayout checks a layout: a relative slash-separated path template
// with {host}, {certificate} and {file}, and optionally {key_type}
// (ecdsa-p256, ...) and {family} (ecdsa or rsa); no other braces, no ".."
// and no absolute path. A dual certificate under a layout without
// {key_type} or {family} gets a {family} directory above its files.
func CheckLayout(layout string) error {
	for _, must := range []string{"{host}", "{certificate}", "{file}"} {
		if !strings.Contains(layout, must) {
			return fmt.Errorf("export layout %q: it must contain %s (e.g. %s)", layout, must, DefaultLayout)
		}
	}
	rest := layout
	for _, v := range []string{"{host}", "{certificate}", "{file}", "{key_type}", "{family}"} {
		rest = strings.ReplaceAll(rest, v, "x")
	}
	if strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("export layout %q: unknown placeholder (use {host}, {certificate}, {key_type}, {family}, {file})", layout)
	}
	if strings.HasPrefix(layout, "/") || strings.Contains(layout, "\\") || slices.Contains(strings.Split(rest, "/"), "..") || strings.ContainsRune(layout, 0) {
		return fmt.Errorf("export layout %q: must be a relative path with '/' and no '..' (it is placed under the export directory)", layout)
	}
	return nil
}

// expand fills layout in for one file. Host names and certificate names
// hold no '/' or "..", and key types and file names are ours, so the
// result stays under the export directory.
func expand(layout, host string, spec certfleet.CertificateSpec, kt certfleet.KeyType, name string) string {
	if len(spec.KeyTypes) > 1 && !strings.Contains(layout, "{key_type}") && !strings.Contains(layout, "{family}") {
		layout = strings.Replace(layout, "{file}", "{family}/{file}", 1)
	}
	r := strings.NewReplacer("{host}", host, "{certificate}", spec.Name, "{key_type}", string(kt), "{family}", kt.Family(), "{file}", name)
	return path.Clean(r.Replace(layout))
}

// put makes f's file hold f's content. A file whose content (decrypted,
// for a key) already is f's is left as it is; a file the manifest does not
// list (ours false) is replaced only then, never overwritten.
func (x *Exporter) put(f file, ours bool) (changed bool, err error) {
	abs := filepath.Join(x.Dir, filepath.FromSlash(f.rel))
	cur, err := os.ReadFile(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("export: %w", err)
	case x.same(f.rel, cur, f):
		return false, nil
	case !ours:
		return false, fmt.Errorf("export: %s exists and was not written by certfleet export (it is not in %s); move it away or choose another layout", abs, ManifestName)
	}
	data, mode := f.data, fs.FileMode(0o644)
	if f.vault {
		if data, err = EncryptVault(f.data, x.VaultPassword); err != nil {
			return false, fmt.Errorf("export: %s: %w", f.rel, err)
		}
		mode = 0o600
	}
	if err := writeAtomic(abs, data, mode); err != nil {
		return false, fmt.Errorf("export: %w", err)
	}
	if f.vault {
		x.remember(f.rel, data, f.data)
	}
	return true, nil
}

// same reports whether cur, the content of the file at rel, already
// holds f.
func (x *Exporter) same(rel string, cur []byte, f file) bool {
	if !f.vault {
		return bytes.Equal(cur, f.data)
	}
	if !IsVault(cur) {
		return false
	}
	if k, ok := x.known[rel]; ok && k.file == sha256.Sum256(cur) && k.password == sha256.Sum256(x.VaultPassword) {
		return k.plain == sha256.Sum256(f.data)
	}
	plain, err := DecryptVault(cur, x.VaultPassword)
	if err != nil {
		return false // another password: rewrite it under this one
	}
	x.remember(rel, cur, plain)
	return bytes.Equal(plain, f.data)
}

// remember notes that the vault file at rel holds data, encrypting plain
// under the current password.
func (x *Exporter) remember(rel string, data, plain []byte) {
	if x.known == nil {
		x.known = make(map[string]knownVault)
	}
	x.known[rel] = knownVault{file: sha256.Sum256(data), plain: sha256.Sum256(plain), password: sha256.Sum256(x.VaultPassword)}
}

// remove deletes rel and the directories it leaves empty, up to Dir.
func (x *Exporter) remove(rel string) error {
	abs := filepath.Join(x.Dir, filepath.FromSlash(rel))
	if err := os.Remove(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("export: %w", err)
	}
	delete(x.known, rel)
	root := filepath.Clean(x.Dir)
	for dir := filepath.Dir(abs); dir != root && strings.HasPrefix(dir, root+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or not ours to judge): stop
			break
		}
	}
	return nil
}

// writeAtomic replaces path with data: a temporary file beside it, synced,
// renamed over it, and the directory synced, so a reader (or a crash)
// sees the old content or the new, never a part.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".certfleet-export-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// manifest is the manifest file's JSON.
type manifest struct {
	Note  string   `json:"note"`
	Files []string `json:"files"`
}

func readManifest(dir string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("export: %s: %w (remove it, and the files certfleet wrote, to start afresh)", filepath.Join(dir, ManifestName), err)
	}
	out := make(map[string]bool, len(m.Files))
	for _, rel := range m.Files {
		// Only paths a layout can make are honoured: a manifest edited to
		// name ../etc/passwd removes nothing outside the tree.
		if rel == path.Clean(rel) && !path.IsAbs(rel) && !strings.HasPrefix(rel, "../") && rel != ".." && rel != "." {
			out[rel] = true
		}
	}
	return out, nil
}

func writeManifest(dir string, files map[string]bool) error {
	m := manifest{Note: "files written by certfleet export; it replaces and removes these, and only these", Files: slices.Sorted(maps.Keys(files))}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("export: manifest: %w", err)
	}
	return nil
}

func (x *Exporter) logger() *slog.Logger {
	if x.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return x.Logger
}
