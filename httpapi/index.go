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

// nameIndex maps every identifier of the enabled specs to the spec that
// serves it. It is rebuilt from the store when the API changed a spec, or
// when it is older than ttl (specs changed by the config file or another
// instance).
type nameIndex struct {
	ttl       time.Duration
	gen       atomic.Uint64 // bumped by invalidate
	snap      atomic.Pointer[indexSnap]
	rebuildMu sync.Mutex // one rebuild at a time

	issMu    sync.Mutex                    // guards issCache
	issCache map[int64]*certfleet.Issuance // archive rows are immutable but for key destruction (invalidate)
}

type indexSnap struct {
	at      time.Time
	gen     uint64
	changed <-chan struct{} // Changes.Wait() when built: closed by the next change, here or (Notifier) elsewhere
	byName  map[string]*certfleet.CertificateSpec
}

func (x *nameIndex) invalidate() {
	x.gen.Add(1)
	x.issMu.Lock()
	x.issCache = nil
	x.issMu.Unlock()
}

// specFor returns the spec serving name exactly; nil when none.
func (s *Server) specFor(ctx context.Context, name string) (*certfleet.CertificateSpec, error) {
	snap, err := s.indexSnap(ctx)
	if err != nil {
		return nil, err
	}
	return snap.byName[name], nil
}

// specCovering returns the spec serving name, or a wildcard's spec that
// covers it (one label deep, RFC 6125 §6.4.3), for TLS lookups by SNI.
func (s *Server) specCovering(ctx context.Context, name string) (*certfleet.CertificateSpec, error) {
	snap, err := s.indexSnap(ctx)
	if err != nil {
		return nil, err
	}
	if sp := snap.byName[name]; sp != nil {
		return sp, nil
	}
	if _, parent, ok := strings.Cut(name, "."); ok && strings.Contains(parent, ".") {
		return snap.byName["*."+parent], nil
	}
	return nil, nil
}

func (s *Server) indexSnap(ctx context.Context) (*indexSnap, error) {
	x := &s.index
	fresh := func(sn *indexSnap) bool {
		if sn == nil || sn.gen != x.gen.Load() || s.Now().Sub(sn.at) >= x.ttl {
			return false
		}
		select {
		case <-sn.changed:
			return false
		default:
			return true
		}
	}
	if sn := x.snap.Load(); fresh(sn) {
		return sn, nil
	}
	x.rebuildMu.Lock()
	defer x.rebuildMu.Unlock()
	if sn := x.snap.Load(); fresh(sn) {
		return sn, nil
	}
	gen, changed := x.gen.Load(), s.Changes.Wait()
	specs, err := s.Store.Specs(ctx, certfleet.SpecFilter{})
	if err != nil {
		return nil, fmt.Errorf("index names: %w", err)
	}
	sn := &indexSnap{at: s.Now(), gen: gen, changed: changed, byName: make(map[string]*certfleet.CertificateSpec, len(specs))}
	for i := range specs {
		sp := &specs[i]
		for _, id := range sp.Identifiers {
			if cur := sn.byName[id.Value]; cur == nil || better(sp, cur, id.Value) {
				sn.byName[id.Value] = sp
			}
		}
	}
	x.snap.Store(sn)
	return sn, nil
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
	gen := x.gen.Load()
	got, err := s.Store.Issuance(ctx, id)
	if err != nil {
		return nil, err
	}
	x.issMu.Lock()
	defer x.issMu.Unlock()
	if x.gen.Load() == gen { // not invalidated while we read
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
// (Changes) and the API's own writes take effect at once.
const cacheTTL = time.Second

type tokEntry struct {
	t  certfleet.Token
	at time.Time
}

type jobEntry struct {
	currentID int64
	at        time.Time
	gen       uint64
	changed   <-chan struct{}
}

type hotCache struct {
	mu   sync.Mutex // guards toks, jobs
	toks map[string]tokEntry
	jobs map[certfleet.JobKey]jobEntry
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
// is announced, the API writes, or cacheTTL passes.
func (s *Server) currentID(ctx context.Context, key certfleet.JobKey) (int64, error) {
	c := &s.hot
	now := s.Now()
	c.mu.Lock()
	e, ok := c.jobs[key]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < cacheTTL && e.gen == s.index.gen.Load() {
		select {
		case <-e.changed:
		default:
			return e.currentID, nil
		}
	}
	changed, gen := s.Changes.Wait(), s.index.gen.Load()
	job, err := s.Store.Job(ctx, key)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.jobs == nil || len(c.jobs) >= 100000 {
		c.jobs = make(map[certfleet.JobKey]jobEntry)
	}
	c.jobs[key] = jobEntry{currentID: job.CurrentID, at: now, gen: gen, changed: changed}
	c.mu.Unlock()
	return job.CurrentID, nil
}
