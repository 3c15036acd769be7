package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/certfleet/certfleet"
)

// placement is what placeName decided.
type placement struct {
	name    string // the spec that serves the name
	changed bool   // the store changed (packing, or a store without batches)
	// write, if set, is the spec still to put, by group commit through
	// batch; names are the names it changes, pending until it is
	// committed.
	write *certfleet.CertificateSpec
	batch certfleet.SpecBatchWriter
	names []string
}

// place decides where the name goes (placeName). With a store that takes
// batches, decisions on different names run at once: the names a decision
// rests on are marked pending while it reads, and a decision that finds
// one already pending waits until it is committed. Packing, and stores
// without batches, decide and write under writeMu, one at a time.
func (s *Server) place(ctx context.Context, p principal, id certfleet.Identifier, rq request) (placement, *Problem, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, batches := s.Store.(certfleet.SpecBatchWriter)
	if !batches || (s.PackSize > 1 && !rq.explicit) {
		s.awaitAll() // packing reads and writes other names' specs
		return s.placeName(ctx, p, id, rq)
	}
	asked := append(certfleet.IdentifierValues(rq.want.Identifiers), id.Value)
	slices.Sort(asked)
	asked = slices.Compact(asked)
	for {
		s.awaitNames(asked)
		s.markPending(asked)
		s.writeMu.Unlock()
		pl, prob, err := s.placeName(ctx, p, id, rq)
		s.writeMu.Lock()
		if prob != nil || err != nil || pl.write == nil {
			s.unmarkPendingLocked(asked)
			return pl, prob, err
		}
		// The name's certificate may hold names beyond those asked for
		// (a PUT that keeps its names): they must not be pending either.
		extra := slices.DeleteFunc(slices.Clone(pl.names), func(n string) bool { return slices.Contains(asked, n) })
		if s.anyPending(extra) {
			s.unmarkPendingLocked(asked)
			s.awaitNames(extra)
			continue
		}
		s.markPending(extra)
		pl.names = append(asked, extra...)
		return pl, nil, nil
	}
}

// placeName puts the name into a spec, by the lumping policy, or leaves
// the spec to write to the caller's group commit (placement.write); a
// problem is the caller's to send. Called by place: with writeMu held, or
// with the names it decides on pending.
func (s *Server) placeName(ctx context.Context, p principal, id certfleet.Identifier, rq request) (placement, *Problem, error) {
	want := rq.want
	cur, err := s.freshSpecFor(ctx, id.Value)
	if err != nil {
		return placement{}, nil, err
	}
	// A name is one owner's: a tenant never takes over, or joins, a
	// certificate of another tenant or of the operator. (Tenants' patterns
	// never overlap: only the operator's names can be in the way.)
	for _, x := range want.Identifiers {
		holder := cur
		if x != id {
			if holder, err = s.specFor(ctx, x.Value); err != nil {
				return placement{}, nil, err
			}
		}
		if holder != nil && holder.Tenant != want.Tenant {
			return placement{}, problemf(certfleet.ECONFLICT, "%q is already managed by certfleet for another owner; ask the operator", x.Value), nil
		}
		if rq.explicit && holder != nil && holder.Name != specName(id.Value) {
			return placement{}, problemf(certfleet.ECONFLICT, "%q is already in certificate %q: withdraw it there first (DELETE /v1/names/%s), then request it here", x.Value, holder.Name, x.Value), nil
		}
	}
	own := cur != nil && cur.Name == specName(id.Value) && cur.Source == certfleet.SourceAPI
	if !rq.explicit && own {
		// A PUT without identifiers on a name with its own certificate
		// changes its settings and keeps its names (and its CSR).
		want.Identifiers = cur.Identifiers
		if len(cur.CSR) > 0 {
			want.CSR, want.KeyTypes = cur.CSR, cur.KeyTypes
		}
	}
	if !rq.explicit && !own && cur != nil {
		// Declared in the config file, or packed with others already.
		if !p.token.MayRead(*cur) {
			return placement{}, outOfScope(id.Value), nil
		}
		return placement{name: cur.Name}, nil, nil
	}
	rq.want = want
	if prob := s.checkRequest(p, rq); prob != nil {
		return placement{}, prob, nil
	}
	// The names whose spec this changes are looked up again (the store
	// tells every instance too; this is for our own next request).
	defer s.index.forget(certfleet.IdentifierValues(want.Identifiers))
	defer s.index.forgetSpec(cur)
	if s.PackSize <= 1 || rq.explicit || own {
		want.Name = specName(id.Value)
		if bw, ok := s.Store.(certfleet.SpecBatchWriter); ok {
			names := certfleet.IdentifierValues(want.Identifiers)
			if cur != nil {
				names = append(names, certfleet.IdentifierValues(cur.Identifiers)...)
			}
			slices.Sort(names)
			return placement{name: want.Name, write: &want, batch: bw, names: slices.Compact(names)}, nil, nil
		}
		changed, err := s.Store.PutSpec(ctx, want)
		return placement{name: want.Name, changed: changed}, nil, err
	}
	name, err := s.pack(ctx, p, id, want, rq.group)
	return placement{name: name, changed: err == nil}, nil, err
}

// packPrefix names the packs of one kind. A pack never crosses a tenant,
// an account, a challenge or any setting of its certificate (key types,
// profile, DNS provider, web root, renewal policy), nor a group; nor the
// token pattern that covers the name (scope), so that every token that
// requested a name of a pack covers all of its names and may read it
// (Token.MayRead): two customers never share a key.
func packPrefix(sp certfleet.CertificateSpec, group, scope string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%v|%s|%s|%s", sp.AccountName(), sp.KeyTypes, sp.Challenge, sp.Profile, group)
	if sp.Tenant != "" || sp.DNSProvider != "" || sp.Webroot != "" || sp.RenewBefore != 0 || sp.ReuseKey || scope != "*" {
		// Only then, so that the packs made before tenants keep their
		// names.
		fmt.Fprintf(h, "|tenant=%s|dns=%s|webroot=%s|renew=%s|reuse=%v|scope=%s", sp.Tenant, sp.DNSProvider, sp.Webroot, sp.RenewBefore, sp.ReuseKey, scope)
	}
	if sp.RenewAfter != 0 {
		fmt.Fprintf(h, "|renew_after=%s", sp.RenewAfter) // likewise
	}
	return "pack-" + hex.EncodeToString(h.Sum(nil))[:12] + "-"
}

// scopeOf returns the pattern of the token that covers name: the first
// one listed ("*" for an operator's token for everything).
func scopeOf(t certfleet.Token, name string) string {
	for _, p := range t.Names {
		if certfleet.MatchNamePattern(p, name) {
			return strings.ToLower(p)
		}
	}
	return ""
}

// pack adds id to the first pack of its kind with room, or to a new one.
// Only that pack's certificate is re-issued.
func (s *Server) pack(ctx context.Context, p principal, id certfleet.Identifier, want certfleet.CertificateSpec, group string) (string, error) {
	prefix := packPrefix(want, group, scopeOf(p.token, id.Value))
	// The packs of this kind only (an index range), not every spec.
	specs, err := s.Store.Specs(ctx, certfleet.SpecFilter{Source: certfleet.SourceAPI, Tenant: want.Tenant, Prefix: prefix, IncludeDisabled: true})
	if err != nil {
		return "", err
	}
	next := 1
	for _, sp := range specs {
		rest, ok := strings.CutPrefix(sp.Name, prefix)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= next {
			next = n + 1
		}
		if sp.Disabled || sp.Tenant != want.Tenant || len(sp.Identifiers) >= min(s.PackSize, certfleet.MaxIdentifiers) {
			continue
		}
		sp.Identifiers = append(sp.Identifiers, id)
		if _, err := s.Store.PutSpec(ctx, sp); err != nil {
			return "", err
		}
		return sp.Name, nil
	}
	want.Name = fmt.Sprintf("%s%d", prefix, next)
	if _, err := s.Store.PutSpec(ctx, want); err != nil {
		return "", err
	}
	return want.Name, nil
}
