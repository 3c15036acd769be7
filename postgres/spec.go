package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/jackc/pgx/v5"
)

const (
	qInsertSpec = `INSERT INTO specs (name, source, disabled, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)`
	qInsertJob  = `INSERT INTO jobs (spec, key_type, target_revision, next_at, disabled) VALUES ($1, $2, $3, $4, $5)`
)

// specJSON is the stored form of a spec: everything but Source and Disabled,
// which are columns (the sync compares and filters on them).
func specJSON(sp certfleet.CertificateSpec) (string, error) {
	sp.Source, sp.Disabled = "", false
	b, err := json.Marshal(sp)
	if err != nil {
		return "", fmt.Errorf("encode spec %q: %w", sp.Name, err)
	}
	return string(b), nil
}

func decodeSpec(source string, disabled bool, js string) (certfleet.CertificateSpec, error) {
	var sp certfleet.CertificateSpec
	if err := json.Unmarshal([]byte(js), &sp); err != nil {
		return sp, fmt.Errorf("decode spec: %w", err)
	}
	sp.Source, sp.Disabled = source, disabled
	return sp, nil
}

type storedSpec struct {
	source   string
	disabled bool
	js       string
}

type storedJob struct {
	id              int64
	currentRevision string
	disabled        bool
}

// SyncSpecs implements certfleet.SpecStore with the SQLite store's
// semantics: every spec is validated first (EINVALID); a spec name declared
// by another source whose spec is still enabled is an ECONFLICT (a disabled
// one is taken over). A changed spec makes each of its jobs whose current
// issuance is of another revision (or that has none yet) due at once;
// unchanged specs are not touched. Syncs are serialised by an advisory lock,
// so instances starting at once with the same config do not collide. The
// writes go to the server in one batch.
func (s *Store) SyncSpecs(ctx context.Context, source string, specs []certfleet.CertificateSpec) (certfleet.SyncResult, error) {
	var res certfleet.SyncResult
	checked, err := certfleet.CheckSync(source, specs)
	if err != nil {
		return res, err
	}
	type item struct {
		spec certfleet.CertificateSpec
		js   string
	}
	items := make([]item, 0, len(checked))
	listed := make(map[string]bool, len(checked))
	for _, sp := range checked {
		listed[sp.Name] = true
		js, err := specJSON(sp)
		if err != nil {
			return res, err
		}
		items = append(items, item{sp, js})
	}

	now := s.now()
	err = s.write(ctx, func(tx pgx.Tx) error {
		res = certfleet.SyncResult{}
		if err := lockSpecs(ctx, tx); err != nil {
			return err
		}
		existing, err := loadSpecs(ctx, tx)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, it := range items {
			sp := it.spec
			old, ok := existing[sp.Name]
			switch {
			case !ok:
				b.Queue(qInsertSpec, sp.Name, source, sp.Disabled, it.js, now)
				for _, kt := range sp.KeyTypes {
					b.Queue(qInsertJob, sp.Name, string(kt), sp.Revision(kt), now, sp.Disabled)
				}
				res.Added = append(res.Added, sp.Name)
				continue
			case old.source != source && !old.disabled:
				return certfleet.Errorf(certfleet.ECONFLICT, "certificate %q is already declared by source %q", sp.Name, old.source)
			case old.source == source && old.disabled == sp.Disabled && old.js == it.js:
				res.Unchanged++
				continue
			}
			b.Queue(`UPDATE specs SET source = $1, disabled = $2, spec = $3, updated_at = $4 WHERE name = $5`,
				source, sp.Disabled, it.js, now, sp.Name)
			if err := syncJobs(ctx, tx, b, sp, now); err != nil {
				return err
			}
			res.Changed = append(res.Changed, sp.Name)
		}

		// Withdraw the source's specs that are no longer declared.
		for name, old := range existing {
			if old.source != source || old.disabled || listed[name] {
				continue
			}
			b.Queue(`UPDATE specs SET disabled = true, updated_at = $1 WHERE name = $2`, now, name)
			b.Queue(`UPDATE jobs SET disabled = true WHERE spec = $1`, name)
			res.Disabled = append(res.Disabled, name)
		}
		sort.Strings(res.Disabled)
		if b.Len() == 0 {
			return nil
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write specs: %w", translate(err))
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return certfleet.SyncResult{}, fmt.Errorf("sync specs of %s: %w", source, err)
	}
	return res, nil
}

// syncJobs queues on b the changes that bring the jobs of a changed spec in
// line with it.
func syncJobs(ctx context.Context, tx pgx.Tx, b *pgx.Batch, sp certfleet.CertificateSpec, now time.Time) error {
	rows, err := tx.Query(ctx, `SELECT id, key_type, current_revision, disabled FROM jobs WHERE spec = $1`, sp.Name)
	if err != nil {
		return translate(err)
	}
	jobs := make(map[certfleet.KeyType]storedJob)
	for rows.Next() {
		var (
			j  storedJob
			kt string
		)
		if err := rows.Scan(&j.id, &kt, &j.currentRevision, &j.disabled); err != nil {
			rows.Close()
			return translate(err)
		}
		jobs[certfleet.KeyType(kt)] = j
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return translate(err)
	}
	for _, kt := range sp.KeyTypes {
		rev := sp.Revision(kt)
		j, ok := jobs[kt]
		if !ok {
			b.Queue(qInsertJob, sp.Name, string(kt), rev, now, sp.Disabled)
			continue
		}
		// A current certificate of another revision (or none at all) is
		// due at once; otherwise the schedule stands.
		dueNow := j.currentRevision != rev
		b.Queue(`UPDATE jobs SET target_revision = $1, disabled = $2,
			next_at = CASE WHEN $3::boolean THEN $4::timestamptz ELSE next_at END WHERE id = $5`,
			rev, sp.Disabled, dueNow, now, j.id)
	}
	for kt, j := range jobs {
		if slices.Contains(sp.KeyTypes, kt) || j.disabled {
			continue
		}
		b.Queue(`UPDATE jobs SET disabled = true WHERE id = $1`, j.id)
	}
	return nil
}

func loadSpecs(ctx context.Context, tx pgx.Tx) (map[string]storedSpec, error) {
	rows, err := tx.Query(ctx, `SELECT name, source, disabled, spec FROM specs`)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	m := make(map[string]storedSpec)
	for rows.Next() {
		var (
			name string
			sp   storedSpec
		)
		if err := rows.Scan(&name, &sp.source, &sp.disabled, &sp.js); err != nil {
			return nil, translate(err)
		}
		m[name] = sp
	}
	return m, translate(rows.Err())
}

// Spec implements certfleet.SpecStore.
func (s *Store) Spec(ctx context.Context, name string) (certfleet.CertificateSpec, error) {
	if s.pool == nil {
		return certfleet.CertificateSpec{}, errNotOpen
	}
	var (
		source, js string
		disabled   bool
	)
	err := s.pool.QueryRow(ctx, `SELECT source, disabled, spec FROM specs WHERE name = $1`, name).Scan(&source, &disabled, &js)
	if errors.Is(err, pgx.ErrNoRows) {
		return certfleet.CertificateSpec{}, certfleet.Errorf(certfleet.ENOTFOUND, "certificate %q not found", name)
	} else if err != nil {
		return certfleet.CertificateSpec{}, fmt.Errorf("load spec %q: %w", name, translate(err))
	}
	sp, err := decodeSpec(source, disabled, js)
	if err != nil {
		return sp, fmt.Errorf("load spec %q: %w", name, err)
	}
	return sp, nil
}

// Specs implements certfleet.SpecStore.
func (s *Store) Specs(ctx context.Context, f certfleet.SpecFilter) ([]certfleet.CertificateSpec, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	rows, err := s.pool.Query(ctx, `SELECT source, disabled, spec FROM specs
		WHERE ($1 = '' OR name = $1) AND ($2 = '' OR source = $2) AND ($3 OR NOT disabled)
		ORDER BY name`, f.Name, f.Source, f.IncludeDisabled)
	if err != nil {
		return nil, fmt.Errorf("list specs: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.CertificateSpec
	for rows.Next() {
		var (
			source, js string
			disabled   bool
		)
		if err := rows.Scan(&source, &disabled, &js); err != nil {
			return nil, fmt.Errorf("list specs: %w", translate(err))
		}
		sp, err := decodeSpec(source, disabled, js)
		if err != nil {
			return nil, fmt.Errorf("list specs: %w", err)
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list specs: %w", translate(err))
	}
	return out, nil
}
