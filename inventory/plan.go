package inventory

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
)

// decoded is what one read of a source declares.
type decoded struct {
	certs  map[string]config.Certificate // valid, by name
	origin map[string]string             // name → the entry that declared it
	// held are the names of invalid entries: their stored specs stay as
	// they are (neither changed nor withdrawn) until the entry is fixed.
	held map[string]bool
	// broken are entries of which no name could be read (a file that is
	// not TOML): the names they declared last time are held.
	broken   map[string]bool
	problems []config.Problem
}

// decode checks every entry with the config's rules. Nothing in it fails:
// an invalid entry is a problem and is skipped, the others are kept.
func decode(cfg *config.Config, source string, entries []Entry) decoded {
	dec := decoded{
		certs:  make(map[string]config.Certificate, len(entries)),
		origin: make(map[string]string, len(entries)),
		held:   make(map[string]bool),
		broken: make(map[string]bool),
	}
	first := make(map[string]string, len(entries)) // lower-case name → where
	add := func(where string, c config.Certificate) {
		name := c.Spec.Name
		if prev, dup := first[strings.ToLower(name)]; dup {
			dec.problems = append(dec.problems, config.Problem{File: where, Field: "name",
				Message: fmt.Sprintf("certificate name %q is already declared by %s; one of them must be renamed", name, prev)})
			return
		}
		first[strings.ToLower(name)] = where
		dec.certs[name] = c
		dec.origin[name] = where
	}
	for _, e := range entries {
		if e.File != nil {
			certs, invalid, err := cfg.InventoryFile(source, e.Where, e.File)
			for _, c := range certs {
				add(e.Where, c)
			}
			for _, n := range invalid {
				dec.held[n] = true
			}
			if err != nil {
				dec.problems = append(dec.problems, config.InventoryProblems(err, e.Where)...)
				if len(certs) == 0 && len(invalid) == 0 {
					dec.broken[e.Where] = true
				}
			}
			continue
		}
		c, name, err := cfg.InventoryEntry(source, e.Where, e.Fields)
		if err != nil {
			dec.problems = append(dec.problems, config.InventoryProblems(err, e.Where)...)
			if name != "" {
				dec.held[name] = true
			} else {
				dec.broken[e.Where] = true
			}
			continue
		}
		add(e.Where, c)
	}
	return dec
}

// entriesDigest fingerprints what a read returned.
func entriesDigest(entries []Entry) [32]byte {
	h := sha256.New()
	var buf []byte
	for _, e := range entries {
		buf = strconv.AppendQuote(buf[:0], e.Where)
		if e.File != nil {
			buf = append(buf, " file "...)
			buf = strconv.AppendInt(buf, int64(len(e.File)), 10)
			h.Write(buf)
			h.Write(e.File)
			h.Write([]byte{'\n'})
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
			buf = append(buf, ' ')
			buf = strconv.AppendQuote(buf, k)
			buf = appendValue(buf, e.Fields[k])
		}
		buf = append(buf, '\n')
		h.Write(buf)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

func appendValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return strconv.AppendQuote(append(buf, "s"...), x)
	case bool:
		return strconv.AppendBool(append(buf, "b"...), x)
	case []any:
		buf = append(buf, '[')
		for _, e := range x {
			buf = appendValue(append(buf, ' '), e)
		}
		return append(buf, ']')
	}
	return fmt.Appendf(append(buf, "v"...), "%T %#v", v, v)
}

// specJSON is a spec as the stores compare it: without Source and
// Disabled.
func specJSON(sp certfleet.CertificateSpec) ([]byte, error) {
	sp.Source, sp.Disabled = "", false
	return json.Marshal(sp)
}

// Plan is what syncing a source would do, or did: certificates added,
// changed and withdrawn, and the entries skipped.
type Plan struct {
	// Source is the spec source, "inventory:NAME".
	Source string
	// Add are certificates new to the store (or taken back from a
	// withdrawal), Change those whose spec differs from the store's.
	Add    []config.Certificate
	Change []Change
	// Withdraw are certificates the source no longer declares whose grace
	// is over: they are disabled (their archive stays; nothing is revoked).
	Withdraw []string
	// Pending are certificates the source no longer declares that stay
	// until their grace is over, with when each was first seen missing.
	Pending map[string]time.Time
	// Held are certificates of invalid entries, kept as stored until the
	// entry is fixed.
	Held []string
	// Unchanged counts the certificates declared as stored.
	Unchanged int
	// Problems are the entries skipped: invalid, or naming a certificate
	// that another source declares.
	Problems []config.Problem
	// Grace is the source's grace period.
	Grace time.Duration

	specs        []certfleet.CertificateSpec // what SyncSpecs gets
	certs        map[string]config.Certificate
	newlyPending []string // names first seen missing by this plan
}

// Change is a certificate whose spec differs from the store's.
type Change struct {
	Old, New certfleet.CertificateSpec
}

// plan compares a read with the store: stored are every spec of the store
// (all sources, withdrawn ones too), pending the source's pending
// withdrawals, now the time, prevOrigin where each name was declared at
// the last read, prevCerts the certificates of the last sync.
func plan(source string, dec decoded, stored []certfleet.CertificateSpec, pending map[string]time.Time, now time.Time, grace time.Duration,
	prevOrigin map[string]string, prevCerts map[string]config.Certificate) Plan {
	p := Plan{Source: source, Pending: make(map[string]time.Time), Grace: grace, certs: make(map[string]config.Certificate, len(dec.certs))}
	ours := make(map[string]certfleet.CertificateSpec)
	others := make(map[string]string) // enabled specs of other sources
	for _, sp := range stored {
		switch {
		case sp.Source == source:
			ours[sp.Name] = sp
		case !sp.Disabled:
			others[sp.Name] = sp.Source
		}
	}
	for _, name := range slices.Sorted(maps.Keys(dec.certs)) {
		c := dec.certs[name]
		if src, taken := others[name]; taken {
			p.Problems = append(p.Problems, config.Problem{File: dec.origin[name], Field: "name",
				Message: fmt.Sprintf("certificate %q is already declared by %s; rename it here or remove it there", name, describeSource(src))})
			continue
		}
		p.specs = append(p.specs, c.Spec)
		p.certs[name] = c
		old, known := ours[name]
		switch {
		case !known || old.Disabled:
			p.Add = append(p.Add, c)
		case !sameSpec(old, c.Spec):
			p.Change = append(p.Change, Change{Old: old, New: c.Spec})
		default:
			p.Unchanged++
		}
	}
	held := maps.Clone(dec.held)
	for name, where := range prevOrigin {
		if dec.broken[where] {
			held[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ours)) {
		sp := ours[name]
		if _, declared := dec.certs[name]; declared || sp.Disabled {
			continue // synced above
		}
		keep := func() {
			p.specs = append(p.specs, sp)
			if c, ok := prevCerts[name]; ok {
				p.certs[name] = c
			}
		}
		if held[name] {
			p.Held = append(p.Held, name)
			keep()
			continue
		}
		since, seen := pending[name]
		if !seen {
			since = now
		}
		if now.Sub(since) >= grace {
			p.Withdraw = append(p.Withdraw, name)
			continue
		}
		p.Pending[name] = since
		if !seen {
			p.newlyPending = append(p.newlyPending, name)
		}
		keep()
	}
	p.Problems = slices.Concat(dec.problems, p.Problems)
	return p
}

func sameSpec(a, b certfleet.CertificateSpec) bool {
	ja, err1 := specJSON(a)
	jb, err2 := specJSON(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// describeSource names a spec source for an operator.
func describeSource(src string) string {
	switch {
	case src == certfleet.SourceConfig:
		return "the config file"
	case src == certfleet.SourceAPI:
		return "the API (a name requested over it)"
	case certfleet.IsInventorySource(src):
		return "inventory source " + strings.TrimPrefix(src, certfleet.SourceInventoryPrefix)
	}
	return "source " + src
}

// NextWithdrawal returns when the first pending withdrawal's grace ends,
// or the zero time when none is pending.
func (p Plan) NextWithdrawal() time.Time {
	var next time.Time
	for _, since := range p.Pending {
		if at := since.Add(p.Grace); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// Empty reports whether the plan changes nothing in the store.
func (p Plan) Empty() bool {
	return len(p.Add) == 0 && len(p.Change) == 0 && len(p.Withdraw) == 0
}
