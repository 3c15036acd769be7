package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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
	qSpecsByName = SQL(`SELECT s.source, s.disabled, s.spec, s.tenant
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
	changed := make([]string, 0, len(old)+len(ids))
	for _, id := range ids {
		tx.Queue(qInsertSpecName, id.Value, name)
		changed = append(changed, id.Value)
	}
	for _, id := range old {
		changed = append(changed, id.Value)
	}
	return changed
}

// unindexSpec removes a withdrawn spec's rows and returns the names it
// held.
func unindexSpec(tx Tx, name string) ([]string, error) {
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

// The listing (CertificatePage): a page of specs, in name order after the
// cursor, joined with their jobs and current issuances in one statement.
// The specs are cut first (the inner LIMIT), so a page reads only its own
// rows: the primary key (or specs_tenant) from the cursor on.
const (
	listColumns = `s.name, s.source, s.disabled, s.spec, s.tenant,
		COALESCE(j.key_type, ''), COALESCE(j.target_revision, ''), COALESCE(j.current_revision, ''), j.next_at,
		COALESCE(j.failures, 0), COALESCE(j.last_error, ''), j.last_error_at, COALESCE(j.pending_order_url, ''),
		COALESCE(j.lease_owner, ''), j.lease_until, COALESCE(j.disabled, false), j.ari_start, j.ari_end,
		COALESCE(j.deploy_error, ''), COALESCE(j.deploy_failures, 0), j.deploy_failed_at, j.deploy_next_at,
		COALESCE(i.id, 0), COALESCE(i.serial, ''), COALESCE(i.fingerprint, ''), i.not_before, i.not_after, i.issued_at`
	listFilter = `s.name > $1 AND ($3 = '' OR s.source = $3) AND ($4 OR NOT s.disabled)
		AND ($5 = '' OR s.name LIKE $5 ESCAPE '\' OR EXISTS (SELECT 1 FROM spec_names n WHERE n.spec = s.name AND n.name LIKE $5 ESCAPE '\'))
		AND (NOT $6 OR EXISTS (SELECT 1 FROM jobs f WHERE f.spec = s.name AND NOT f.disabled AND f.failures > 0))`
	listJoin = ` LEFT JOIN jobs j ON j.spec = s.name AND ($4 OR NOT j.disabled)
		LEFT JOIN issuances i ON i.id = j.current_id`
	// listJoinPG is listJoin as lateral joins: PostgreSQL then looks each
	// page's jobs and issuances up by index whatever its statistics say
	// (right after 100,000 specs were added, before autoanalyze, it chose
	// to hash every job: 0.3 s a page instead of 0.3 ms).
	listJoinPG = ` LEFT JOIN LATERAL (SELECT * FROM jobs j WHERE j.spec = s.name AND ($4 OR NOT j.disabled)) j ON true
		LEFT JOIN LATERAL (SELECT * FROM issuances i WHERE i.id = j.current_id) i ON true`
)

var (
	qListCertificates = listStatement(`($2 = '' OR s.tenant = $2)`, `s.name`)
	// qListTenantCertificates walks specs_tenant (tenant, name).
	qListTenantCertificates = listStatement(`s.tenant = $2`, `s.tenant, s.name`)
	qChainOf                = SQL(`SELECT chain_pem FROM issuances WHERE id = $1`)
)

// listStatement is the listing with the tenant condition and the order of
// the specs' index walk, in each dialect's join.
func listStatement(tenant, order string) Q {
	page := `SELECT ` + listColumns + `
		FROM (SELECT name, source, disabled, spec, tenant FROM specs s WHERE ` + tenant + ` AND ` + listFilter + `
			ORDER BY ` + order + ` LIMIT $7) s`
	const end = ` ORDER BY s.name, j.key_type`
	return SQLEach(page+listJoin+end, page+listJoinPG+end)
}

// likePattern is a LIKE pattern matching what contains sub.
func likePattern(sub string) string {
	if sub == "" {
		return ""
	}
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(sub)) + "%"
}

// CertificatePage implements certfleet.NameIndex.
func (s *Store) CertificatePage(ctx context.Context, cq certfleet.CertificateQuery) ([]certfleet.CertificateListing, error) {
	limit := cq.Limit
	switch {
	case limit < 0:
		return nil, certfleet.Errorf(certfleet.EINVALID, "list certificates: limit %d: give 1 to %d", limit, certfleet.MaxCertificatePage)
	case limit == 0:
		limit = certfleet.DefaultCertificatePage
	}
	limit = min(limit, certfleet.MaxCertificatePage)
	if s.db == nil {
		return nil, errNotOpen
	}
	var out []certfleet.CertificateListing
	err := s.db.View(ctx, func(q Querier) error {
		out = out[:0]
		stmt := qListCertificates
		if cq.Tenant != "" {
			stmt = qListTenantCertificates
		}
		rows, err := q.Query(stmt, cq.After, cq.Tenant, cq.Source, cq.IncludeDisabled, likePattern(cq.Search), cq.Failing, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				name, source, js, tenant, kt, pendingURL string
				disabled, jobDisabled                    bool
				j                                        certfleet.ListedJob
				nextAt, lastErrAt, leaseUntil            time.Time
				ariStart, ariEnd                         time.Time
				deployFailedAt, deployNextAt             time.Time
				c                                        = &j.Current
			)
			if err := rows.Scan(&name, &source, &disabled, &js, &tenant,
				&kt, &j.TargetRevision, &j.CurrentRevision, &nextAt,
				&j.Failures, &j.LastError, &lastErrAt, &pendingURL,
				&j.LeaseOwner, &leaseUntil, &jobDisabled, &ariStart, &ariEnd,
				&j.Deploy.Error, &j.Deploy.Failures, &deployFailedAt, &deployNextAt,
				&c.IssuanceID, &c.Serial, &c.Fingerprint, &c.NotBefore, &c.NotAfter, &c.IssuedAt); err != nil {
				return err
			}
			if len(out) == 0 || out[len(out)-1].Spec.Name != name {
				sp, err := decodeSpec(source, disabled, js, tenant)
				if err != nil {
					return fmt.Errorf("certificate %q: %w", name, err)
				}
				out = append(out, certfleet.CertificateListing{Spec: sp})
			}
			if kt == "" {
				continue // a spec without jobs
			}
			j.KeyType, j.NextAt, j.LastErrorAt, j.LeaseUntil = certfleet.KeyType(kt), nextAt, lastErrAt, leaseUntil
			j.Pending, j.Disabled, j.ARIStart, j.ARIEnd = pendingURL != "", jobDisabled, ariStart, ariEnd
			j.Deploy.FailedAt, j.Deploy.NextAt = deployFailedAt, deployNextAt
			if c.IssuanceID != 0 {
				c.Spec, c.KeyType, c.NextAt, c.Failures, c.LastError = name, j.KeyType, nextAt, j.Failures, j.LastError
			} else {
				j.Current = certfleet.CurrentCertificate{}
			}
			out[len(out)-1].Jobs = append(out[len(out)-1].Jobs, j)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !cq.Chains {
			return nil
		}
		for i := range out {
			for k := range out[i].Jobs {
				j := &out[i].Jobs[k]
				if j.Current.IssuanceID == 0 {
					continue
				}
				if err := q.QueryRow(qChainOf, j.Current.IssuanceID).Scan(&j.ChainPEM); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	return out, nil
}
