package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet"
)

// nameIndex caches, per name, the spec that serves it, as the store's
// name index (certfleet.NameIndex) says: a miss is one index lookup, and
// nothing is ever rebuilt from every spec (issue 13: the map of every spec
// this replaced was rebuilt after each PUT, O(specs) per request). An
// entry is dropped when its name changes: at once for this server's own
// writes, and for the writes of every instance (the config file's sync,
// other servers on the same PostgreSQL) through the store's NameWatcher.
// Without a watcher an entry lives ttl.
type nameIndex struct {
	ttl     time.Duration // DefaultIndexTTL; longer with a watcher (its backstop)
	watched bool          // the store tells which names change
	gen     atomic.Uint64 // bumped by every forget: a lookup that overlapped one does not cache
	lookups atomic.Int64  // store lookups (SpecsByName), for tests and metrics

	mu    sync.Mutex // guards names
	names map[string]nameEntry

	jobGen atomic.Uint64 // bumped when the API forgot jobs' certificates (withdraw with revoke, tenant deletion)

	issMu    sync.Mutex                    // guards issCache
	issCache map[int64]*certfleet.Issuance // archive rows are immutable but for key destruction (dropIssuances)
}

type nameEntry struct {
	spec *certfleet.CertificateSpec // nil: no spec holds the name
	at   time.Time
}

// maxCachedNames bounds the cache (about 1 KB an entry): beyond it an
// entry is evicted to make room, so serve's memory stays flat with the
// number of names.
const maxCachedNames = 50000

// watchedIndexTTL is how long an entry lives when the store tells which
// names change: only a backstop against a lost notification.
const watchedIndexTTL = 30 * time.Second

// forget drops the cached specs of names (nil: all).
func (x *nameIndex) forget(names []string) {
	x.gen.Add(1)
	x.mu.Lock()
	defer x.mu.Unlock()
	if names == nil {
		x.names = nil
		return
	}
	for _, n := range names {
		delete(x.names, n)
	}
}

// forgetSpec drops the names of sp (nil does nothing).
func (x *nameIndex) forgetSpec(sp *certfleet.CertificateSpec) {
	if sp != nil {
		x.forget(certfleet.IdentifierValues(sp.Identifiers))
	}
}

// dropIssuances empties the archive cache and the jobs' current
// certificates: keys were destroyed or jobs forgot their certificates.
func (x *nameIndex) dropIssuances() {
	x.jobGen.Add(1)
	x.issMu.Lock()
	x.issCache = nil
	x.issMu.Unlock()
}

// watch subscribes the index to the store's name changes, if it tells
// them.
func (s *Server) watchNames() {
	x := &s.index
	x.ttl = DefaultIndexTTL
	if w, ok := s.Store.(certfleet.NameWatcher); ok {
		w.WatchNames(x.forget)
		x.watched, x.ttl = true, watchedIndexTTL
	}
}

// specFor returns the spec serving name exactly; nil when none.
func (s *Server) specFor(ctx context.Context, name string) (*certfleet.CertificateSpec, error) {
	x := &s.index
	now := s.Now()
	x.mu.Lock()
	e, ok := x.names[name]
	x.mu.Unlock()
	if ok && now.Sub(e.at) < x.ttl {
		return e.spec, nil
	}
	gen := x.gen.Load()
	x.lookups.Add(1)
	specs, err := s.Store.SpecsByName(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("look up %q: %w", name, err)
	}
	var best *certfleet.CertificateSpec
	for i := range specs {
		if sp := &specs[i]; best == nil || better(sp, best, name) {
			best = sp
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.gen.Load() == gen { // no change was told while we read
		if x.names == nil {
			x.names = make(map[string]nameEntry)
		}
		if len(x.names) >= maxCachedNames {
			for k := range x.names { // a random victim
				delete(x.names, k)
				break
			}
		}
		x.names[name] = nameEntry{spec: best, at: now}
	}
	return best, nil
}

// freshSpecFor is specFor read from the store, for a write that decides
// on it.
func (s *Server) freshSpecFor(ctx context.Context, name string) (*certfleet.CertificateSpec, error) {
	s.index.forget([]string{name})
	return s.specFor(ctx, name)
}

// specCovering returns the spec serving name, or a wildcard's spec that
// covers it (one label deep, RFC 6125 §6.4.3), for TLS lookups by SNI.
func (s *Server) specCovering(ctx context.Context, name string) (*certfleet.CertificateSpec, error) {
	sp, err := s.specFor(ctx, name)
	if err != nil || sp != nil {
		return sp, err
	}
	if _, parent, ok := strings.Cut(name, "."); ok && strings.Contains(parent, ".") {
		return s.specFor(ctx, "*."+parent)
	}
	return nil, nil
}

// better prefers, for one name, the spec made for that name alone, then
// the spec with the fewest names, then the first by name.
func better(a, b *certfleet.CertificateSpec, name string) bool {
	if ea, eb := a.Name == specName(name), b.Name == specName(name); ea != eb {
		return ea
	}
	if len(a.Identifiers) != len(b.Identifiers) {
		return len(a.Identifiers) < len(b.Identifiers)
	}
	return a.Name < b.Name
}

// issuance returns an archive row, cached: rows never change except when
// their key is destroyed, which invalidates the cache.
func (s *Server) issuance(ctx context.Context, id int64) (*certfleet.Issuance, error) {
	x := &s.index
	x.issMu.Lock()
	iss := x.issCache[id]
	x.issMu.Unlock()
	if iss != nil {
		return iss, nil
	}
	gen := x.jobGen.Load()
	got, err := s.Store.Issuance(ctx, id)
	if err != nil {
		return nil, err
	}
	x.issMu.Lock()
	defer x.issMu.Unlock()
	if x.jobGen.Load() == gen { // not invalidated while we read
		if x.issCache == nil || len(x.issCache) >= 10000 {
			x.issCache = make(map[int64]*certfleet.Issuance)
		}
		x.issCache[id] = &got
	}
	return &got, nil
}

// specName is the name of the spec made for one requested name: the name
// itself, with what a spec name cannot hold spelled out. Host names hold no
// '_', so these never collide with one.
func specName(name string) string {
	n := name
	switch {
	case strings.HasPrefix(name, "*."):
		n = "wildcard_." + name[2:]
	case strings.Contains(name, ":"):
		n = "ip6_" + strings.ReplaceAll(name, ":", "-")
	}
	if certfleet.ValidateName(n) != nil { // longer than a spec name may be
		sum := sha256.Sum256([]byte(name))
		n = "name_" + hex.EncodeToString(sum[:20])
	}
	return n
}

// cacheTTL bounds how long a token or a job's current certificate is
// served from memory: a revoked token stops working, and a certificate
// issued by another instance shows, within it. Issuance by this process
// (Changes.NotifySpec of its certificate, or Changes.Notify) and the API's
// own writes take effect at once; a long-poll woken by any change reads
// the store again.
const cacheTTL = time.Second

type tokEntry struct {
	t  certfleet.Token
	at time.Time
}

type jobEntry struct {
	currentID int64
	at        time.Time
	gen       uint64 // nameIndex.jobGen when read
	version   uint64 // Changes.Version of the job's certificate when read
}

type hotCache struct {
	mu   sync.Mutex // guards toks, jobs
	toks map[string]tokEntry
	jobs map[certfleet.JobKey]jobEntry

	jobReads atomic.Int64 // store reads of a job by currentID, for tests
}

// freshKey marks a request context whose reads of jobs skip the cache: a
// long-poll woken by a change, which may be another instance's.
type freshKey struct{}

// withFresh returns ctx marked so that currentID reads the store.
func withFresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// tokenByHash is Store.TokenByHash with a short cache of found tokens.
func (s *Server) tokenByHash(ctx context.Context, hash []byte) (certfleet.Token, error) {
	c := &s.hot
	now := s.Now()
	c.mu.Lock()
	e, ok := c.toks[string(hash)]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < cacheTTL {
		return e.t, nil
	}
	t, err := s.Store.TokenByHash(ctx, hash)
	if err != nil {
		return t, err
	}
	c.mu.Lock()
	if c.toks == nil || len(c.toks) >= 10000 {
		c.toks = make(map[string]tokEntry)
	}
	c.toks[string(hash)] = tokEntry{t: t, at: now}
	c.mu.Unlock()
	return t, nil
}

// currentID returns the job's current issuance ID, cached until a change
// of its certificate is announced (Changes.Version: this process's
// issuance, the API's writes, a Notify), the API forgets jobs, or cacheTTL
// passes. Changes to other certificates leave it cached: a GET of one
// name does not read the store because other names are being declared or
// issued.
func (s *Server) currentID(ctx context.Context, key certfleet.JobKey) (int64, error) {
	c := &s.hot
	now := s.Now()
	version := s.Changes.Version(key.Spec)
	if fresh, _ := ctx.Value(freshKey{}).(bool); !fresh {
		c.mu.Lock()
		e, ok := c.jobs[key]
		c.mu.Unlock()
		if ok && now.Sub(e.at) < cacheTTL && e.gen == s.index.jobGen.Load() && e.version == version {
			return e.currentID, nil
		}
	}
	gen := s.index.jobGen.Load()
	c.jobReads.Add(1)
	job, err := s.Store.Job(ctx, key)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.jobs == nil || len(c.jobs) >= 100000 {
		c.jobs = make(map[certfleet.JobKey]jobEntry)
	}
	c.jobs[key] = jobEntry{currentID: job.CurrentID, at: now, gen: gen, version: version}
	c.mu.Unlock()
	return job.CurrentID, nil
}
