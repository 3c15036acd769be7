package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/certfleet/certfleet"
)

var (
	qInsertSpec = SQL(`INSERT INTO specs (name, source, disabled, spec, created_at, updated_at, tenant) VALUES ($1, $2, $3, $4, $5, $5, $6)`)
	// qInsertJob: a new job is a change not yet ordered (changed_at, the
	// start of its pack delay).
	qInsertJob  = SQL(`INSERT INTO jobs (spec, key_type, target_revision, next_at, disabled, changed_at) VALUES ($1, $2, $3, $4, $5, $4)`)
	qUpdateSpec = SQL(`UPDATE specs SET source = $1, disabled = $2, spec = $3, updated_at = $4, tenant = $6 WHERE name = $5`)
	// qDisableSpec and qDisableJobsOfSpec withdraw a spec: SyncSpecs for
	// one its source no longer lists, WithdrawSpec.
	qDisableSpec       = SQL(`UPDATE specs SET disabled = true, updated_at = $1 WHERE name = $2`)
	qDisableJobsOfSpec = SQL(`UPDATE jobs SET disabled = true WHERE spec = $1`)
	qAllSpecs          = SQL(`SELECT name, source, disabled, spec, tenant FROM specs`)
	qJobsOfSpec        = SQL(`SELECT id, key_type, current_revision, disabled FROM jobs WHERE spec = $1`)
	// qSyncJob and qSyncJobDue bring a job in line with its changed spec;
	// qSyncJobDue also makes it due at once, and starts its pack delay
	// unless a change before it did (changed_at: the first change not
	// yet ordered, so that a stream of changes cannot put the order off
	// for ever). qSyncJob's spec is back to what the current issuance
	// holds: no change is pending.
	qSyncJob    = SQL(`UPDATE jobs SET target_revision = $1, disabled = $2, changed_at = NULL WHERE id = $3`)
	qSyncJobDue = SQL(`UPDATE jobs SET target_revision = $1, disabled = $2, next_at = $3, changed_at = COALESCE(changed_at, $3) WHERE id = $4`)
	qDisableJob = SQL(`UPDATE jobs SET disabled = true WHERE id = $1`)
	qSpec       = SQL(`SELECT source, disabled, spec, tenant FROM specs WHERE name = $1`)
	qSpecs      = SQL(`SELECT source, disabled, spec, tenant FROM specs
		WHERE ($1 = '' OR name = $1) AND ($2 = '' OR source = $2) AND ($3 OR NOT disabled)
		AND name >= $4 AND ($5 = '' OR name < $5)
		ORDER BY name`)
	// qTenantSpecs lists a tenant's specs through specs_tenant (tenant,
	// name).
	qTenantSpecs = SQL(`SELECT source, disabled, spec, tenant FROM specs
		WHERE tenant = $1 AND ($2 = '' OR name = $2) AND ($3 = '' OR source = $3) AND ($4 OR NOT disabled)
		AND name >= $5 AND ($6 = '' OR name < $6)
		ORDER BY tenant, name`)
)

// specJSON is the stored form of a spec: everything but Source, Disabled and
// Tenant, which are columns (the sync compares and filters on them).
func specJSON(sp certfleet.CertificateSpec) (string, error) {
	sp.Source, sp.Disabled, sp.Tenant = "", false, ""
	b, err := json.Marshal(sp)
	if err != nil {
		return "", fmt.Errorf("encode spec %q: %w", sp.Name, err)
	}
	return string(b), nil
}

func decodeSpec(source string, disabled bool, js, tenant string) (certfleet.CertificateSpec, error) {
	var sp certfleet.CertificateSpec
	if err := json.Unmarshal([]byte(js), &sp); err != nil {
		return sp, fmt.Errorf("decode spec: %w", err)
	}
	sp.Source, sp.Disabled, sp.Tenant = source, disabled, tenant
	return sp, nil
}

type storedSpec struct {
	source   string
	disabled bool
	js       string
	tenant   string
}

type storedJob struct {
	id              int64
	currentRevision string
	disabled        bool
}

// SyncSpecs implements certfleet.SpecStore. Every spec is validated first
// (EINVALID); a spec name declared by another source whose spec is still
// enabled is an ECONFLICT (a disabled one is taken over). A changed spec
// makes each of its jobs whose current issuance is of another revision (or
// that has none yet) due at once; unchanged specs are not touched at all.
//
// It reads everything it decides on first, then writes: on PostgreSQL the
// writes go to the server in one batch, and syncs are serialised by an
// advisory lock (see lockSpecs), so instances starting at once with the
// same config do not collide.
func (s *Store) SyncSpecs(ctx context.Context, source string, specs []certfleet.CertificateSpec) (certfleet.SyncResult, error) {
	var res certfleet.SyncResult
	checked, err := certfleet.CheckSync(source, specs)
	if err != nil {
		return res, err
	}
	type item struct {
		spec    certfleet.CertificateSpec
		js      string
		added   bool
		changed bool
		jobs    map[certfleet.KeyType]storedJob // of a changed spec
	}
	items := make([]item, 0, len(checked))
	listed := make(map[string]bool, len(checked))
	for _, sp := range checked {
		listed[sp.Name] = true
		js, err := specJSON(sp)
		if err != nil {
			return res, err
		}
		items = append(items, item{spec: sp, js: js})
	}

	now := s.now()
	err = s.write(ctx, func(tx Tx) error {
		res = certfleet.SyncResult{}
		if err := lockSpecs(tx); err != nil {
			return err
		}
		existing, err := loadSpecs(tx)
		if err != nil {
			return err
		}
		for i := range items {
			it := &items[i]
			sp := it.spec
			old, ok := existing[sp.Name]
			it.added, it.changed, it.jobs = !ok, false, nil
			switch {
			case !ok:
				continue
			case old.source != source && !old.disabled:
				return certfleet.Errorf(certfleet.ECONFLICT, "certificate %q is already declared by source %q", sp.Name, old.source)
			case old.source == source && old.disabled == sp.Disabled && old.js == it.js && old.tenant == sp.Tenant:
				res.Unchanged++
				continue
			}
			it.changed = true
			if it.jobs, err = loadJobs(tx, sp.Name); err != nil {
				return err
			}
		}

		var names []string // whose certificates changed, for the watchers
		for _, it := range items {
			sp := it.spec
			ids := sp.Identifiers
			if sp.Disabled {
				ids = nil
			}
			switch {
			case it.added:
				tx.Queue(qInsertSpec, sp.Name, source, sp.Disabled, it.js, now, sp.Tenant)
				for _, kt := range sp.KeyTypes {
					tx.Queue(qInsertJob, sp.Name, string(kt), sp.Revision(kt), now, sp.Disabled)
				}
				names = append(names, indexSpec(tx, sp.Name, nil, ids)...)
				res.Added = append(res.Added, sp.Name)
			case it.changed:
				tx.Queue(qUpdateSpec, source, sp.Disabled, it.js, now, sp.Name, sp.Tenant)
				syncJobs(tx, sp, it.jobs, now)
				var old []certfleet.Identifier
				if o := existing[sp.Name]; !o.disabled {
					old = decodedIdentifiers(o.js)
				}
				names = append(names, indexSpec(tx, sp.Name, old, ids)...)
				res.Changed = append(res.Changed, sp.Name)
			}
		}

		// Withdraw the source's specs that are no longer declared.
		for name, old := range existing {
			if old.source != source || old.disabled || listed[name] {
				continue
			}
			tx.Queue(qDisableSpec, now, name)
			tx.Queue(qDisableJobsOfSpec, name)
			names = append(names, indexSpec(tx, name, decodedIdentifiers(old.js), nil)...)
			res.Disabled = append(res.Disabled, name)
		}
		sort.Strings(res.Disabled)
		if len(res.Added)+len(res.Changed)+len(res.Disabled) == 0 {
			return nil
		}
		if err := notifyNames(tx, names); err != nil {
			return err
		}
		return tx.Notify()
	})
	if err != nil {
		return certfleet.SyncResult{}, fmt.Errorf("sync specs of %s: %w", source, err)
	}
	return res, nil
}

// loadJobs returns the jobs of spec by key type.
func loadJobs(tx Tx, spec string) (map[certfleet.KeyType]storedJob, error) {
	rows, err := tx.Query(qJobsOfSpec, spec)
	if err != nil {
		return nil, fmt.Errorf("load jobs of %q: %w", spec, err)
	}
	defer rows.Close()
	jobs := make(map[certfleet.KeyType]storedJob)
	for rows.Next() {
		var (
			j  storedJob
			kt string
		)
		if err := rows.Scan(&j.id, &kt, &j.currentRevision, &j.disabled); err != nil {
			return nil, fmt.Errorf("load jobs of %q: %w", spec, err)
		}
		jobs[certfleet.KeyType(kt)] = j
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load jobs of %q: %w", spec, err)
	}
	return jobs, nil
}

// syncJobs queues the changes that bring jobs, the jobs of the changed spec
// sp (loadJobs), in line with it.
func syncJobs(tx Tx, sp certfleet.CertificateSpec, jobs map[certfleet.KeyType]storedJob, now time.Time) {
	for _, kt := range sp.KeyTypes {
		rev := sp.Revision(kt)
		j, ok := jobs[kt]
		switch {
		case !ok:
			tx.Queue(qInsertJob, sp.Name, string(kt), rev, now, sp.Disabled)
		case j.currentRevision != rev:
			// A current certificate of another revision (or none at
			// all) is due at once; otherwise the schedule stands.
			tx.Queue(qSyncJobDue, rev, sp.Disabled, now, j.id)
		default:
			tx.Queue(qSyncJob, rev, sp.Disabled, j.id)
		}
	}
	for kt, j := range jobs {
		if slices.Contains(sp.KeyTypes, kt) || j.disabled {
			continue
		}
		tx.Queue(qDisableJob, j.id)
	}
}

func loadSpecs(tx Tx) (map[string]storedSpec, error) {
	rows, err := tx.Query(qAllSpecs)
	if err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	defer rows.Close()
	m := make(map[string]storedSpec)
	for rows.Next() {
		var (
			name string
			sp   storedSpec
		)
		if err := rows.Scan(&name, &sp.source, &sp.disabled, &sp.js, &sp.tenant); err != nil {
			return nil, fmt.Errorf("load specs: %w", err)
		}
		m[name] = sp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	return m, nil
}

// Spec implements certfleet.SpecStore.
func (s *Store) Spec(ctx context.Context, name string) (certfleet.CertificateSpec, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.CertificateSpec{}, err
	}
	var (
		source, js, tenant string
		disabled           bool
	)
	err = q.QueryRow(qSpec, name).Scan(&source, &disabled, &js, &tenant)
	if noRows(err) {
		return certfleet.CertificateSpec{}, certfleet.Errorf(certfleet.ENOTFOUND, "certificate %q not found", name)
	} else if err != nil {
		return certfleet.CertificateSpec{}, fmt.Errorf("load spec %q: %w", name, err)
	}
	sp, err := decodeSpec(source, disabled, js, tenant)
	if err != nil {
		return sp, fmt.Errorf("load spec %q: %w", name, err)
	}
	return sp, nil
}

// Specs implements certfleet.SpecStore.
func (s *Store) Specs(ctx context.Context, f certfleet.SpecFilter) ([]certfleet.CertificateSpec, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	lo, hi := f.Prefix, prefixEnd(f.Prefix)
	var rows Rows
	if f.Tenant != "" {
		rows, err = q.Query(qTenantSpecs, f.Tenant, f.Name, f.Source, f.IncludeDisabled, lo, hi)
	} else {
		rows, err = q.Query(qSpecs, f.Name, f.Source, f.IncludeDisabled, lo, hi)
	}
	if err != nil {
		return nil, fmt.Errorf("list specs: %w", err)
	}
	return scanSpecs(rows)
}

// scanSpecs reads and closes rows of (source, disabled, spec, tenant).
func scanSpecs(rows Rows) ([]certfleet.CertificateSpec, error) {
	defer rows.Close()
	var out []certfleet.CertificateSpec
	for rows.Next() {
		var (
			source, js, tenant string
			disabled           bool
		)
		if err := rows.Scan(&source, &disabled, &js, &tenant); err != nil {
			return nil, fmt.Errorf("list specs: %w", err)
		}
		sp, err := decodeSpec(source, disabled, js, tenant)
		if err != nil {
			return nil, fmt.Errorf("list specs: %w", err)
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list specs: %w", err)
	}
	return out, nil
}

// prefixEnd is the least string above every string that starts with p
// ("" for none: no upper bound), for an index range over a prefix.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}
