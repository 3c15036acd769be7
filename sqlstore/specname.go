package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/certfleet/certfleet"
)

// The name index (issue 13): spec_names holds one row per identifier of
// every enabled spec, written in the transaction that writes the spec, so
// that a name's certificate is one index lookup (SpecsByName) and every
// instance can be told which names changed (NotifyNames).
var (
	qInsertSpecName = SQL(`INSERT INTO spec_names (name, spec) VALUES ($1, $2) ON CONFLICT DO NOTHING`)
	qClearSpecNames = SQL(`DELETE FROM spec_names WHERE spec = $1`)
	// qUnindexSpec removes a withdrawn spec's rows and says which names
	// they were, for the watchers.
	qUnindexSpec = SQL(`DELETE FROM spec_names WHERE spec = $1 RETURNING name`)
	// spec_terms: what the listings' search finds a spec by
	// (certfleet.SearchTerms), replaced with the spec's names.
	qInsertSpecTerm = SQL(`INSERT INTO spec_terms (term, spec) VALUES ($1, $2) ON CONFLICT DO NOTHING`)
	qClearSpecTerms = SQL(`DELETE FROM spec_terms WHERE spec = $1`)
	qSpecsByName    = SQL(`SELECT s.source, s.disabled, s.spec, s.tenant
		FROM spec_names n JOIN specs s ON s.name = n.spec
		WHERE n.name = $1 AND NOT s.disabled ORDER BY n.name, n.spec`)
)

// maxNotifiedNames is the most names one transaction tells watchers one
// by one; beyond it (a config file's first sync of thousands of specs) it
// says "everything" (nil), which costs a cache refill, not a notification
// per name.
const maxNotifiedNames = 500

// indexSpec queues the replacement of name's rows by ids (none for a
// withdrawn spec) and returns the names to tell watchers: old and new.
func indexSpec(tx Tx, name string, old, ids []certfleet.Identifier) []string {
	tx.Queue(qClearSpecNames, name)
	tx.Queue(qClearSpecTerms, name)
	changed := make([]string, 0, len(old)+len(ids))
	for _, id := range ids {
		tx.Queue(qInsertSpecName, id.Value, name)
		changed = append(changed, id.Value)
	}
	if len(ids) > 0 {
		for _, t := range certfleet.SearchTerms(append([]string{name}, certfleet.IdentifierValues(ids)...)...) {
			tx.Queue(qInsertSpecTerm, t, name)
		}
	}
	for _, id := range old {
		changed = append(changed, id.Value)
	}
	return changed
}

// unindexSpec removes a withdrawn spec's rows and returns the names it
// held.
func unindexSpec(tx Tx, name string) ([]string, error) {
	tx.Queue(qClearSpecTerms, name)
	rows, err := tx.Query(qUnindexSpec, name)
	if err != nil {
		return nil, fmt.Errorf("unindex names of %q: %w", name, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("unindex names of %q: %w", name, err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("unindex names of %q: %w", name, err)
	}
	return names, nil
}

// notifyNames tells the watchers of every instance, at commit, that the
// specs of names changed: one by one up to maxNotifiedNames, else all.
func notifyNames(tx Tx, names []string) error {
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > maxNotifiedNames {
		names = nil
	}
	return tx.NotifyNames(names)
}

// SpecsByName implements certfleet.NameIndex.
func (s *Store) SpecsByName(ctx context.Context, name string) ([]certfleet.CertificateSpec, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qSpecsByName, name)
	if err != nil {
		return nil, fmt.Errorf("look up %q: %w", name, err)
	}
	specs, err := scanSpecs(rows)
	if err != nil {
		return nil, fmt.Errorf("look up %q: %w", name, err)
	}
	return specs, nil
}

// nameWatchers are the functions WatchNames registered.
type nameWatchers struct {
	mu   sync.Mutex // guards fns, next
	fns  map[int]func([]string)
	next int
}

// WatchNames implements certfleet.NameWatcher: the driver delivers what
// NotifyNames sent (DeliverNames).
func (s *Store) WatchNames(fn func(names []string)) (stop func()) {
	w := &s.watchers
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = make(map[int]func([]string))
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	return func() {
		w.mu.Lock()
		delete(w.fns, id)
		w.mu.Unlock()
	}
}

// DeliverNames calls every watcher with names (nil: all may have
// changed). Drivers call it when a NotifyNames of any instance arrives,
// and with nil after they may have missed some.
func (s *Store) DeliverNames(names []string) {
	w := &s.watchers
	w.mu.Lock()
	fns := make([]func([]string), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn(names)
	}
}
