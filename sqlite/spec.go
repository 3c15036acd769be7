package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/certfleet/certfleet"
)

const (
	qInsertSpec = `INSERT INTO specs (name, source, disabled, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`
	qInsertJob  = `INSERT INTO jobs (spec, key_type, target_revision, next_at, disabled) VALUES (?, ?, ?, ?, ?)`
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

func decodeSpec(source string, disabled int, js string) (certfleet.CertificateSpec, error) {
	var sp certfleet.CertificateSpec
	if err := json.Unmarshal([]byte(js), &sp); err != nil {
		return sp, fmt.Errorf("decode spec: %w", err)
	}
	sp.Source, sp.Disabled = source, disabled != 0
	return sp, nil
}

type storedSpec struct {
	source   string
	disabled bool
	js       string
}

type storedJob struct {
	id              int64
	targetRevision  string
	currentRevision string
	disabled        bool
}

// SyncSpecs implements certfleet.SpecStore. Every spec is validated first;
// a spec name declared by another source whose spec is still enabled is an
// ECONFLICT (a disabled one is taken over). A changed spec makes each of its
// jobs whose current issuance is of another revision (or that has none yet)
// due at once; unchanged specs are not touched at all.
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

	now := tsReq(s.now())
	err = s.write(ctx, func(tx *txn) error {
		res = certfleet.SyncResult{}
		existing, err := loadSpecs(ctx, tx)
		if err != nil {
			return err
		}
		for _, it := range items {
			sp := it.spec
			old, ok := existing[sp.Name]
			switch {
			case !ok:
				if _, err := tx.exec(qInsertSpec, sp.Name, source, boolInt(sp.Disabled), it.js, now, now); err != nil {
					return fmt.Errorf("add spec %q: %w", sp.Name, translate(err))
				}
				for _, kt := range sp.KeyTypes {
					if _, err := tx.exec(qInsertJob, sp.Name, string(kt), sp.Revision(kt), now, boolInt(sp.Disabled)); err != nil {
						return fmt.Errorf("add job %s/%s: %w", sp.Name, kt, translate(err))
					}
				}
				res.Added = append(res.Added, sp.Name)
				continue
			case old.source != source && !old.disabled:
				return certfleet.Errorf(certfleet.ECONFLICT, "certificate %q is already declared by source %q", sp.Name, old.source)
			case old.source == source && old.disabled == sp.Disabled && old.js == it.js:
				res.Unchanged++
				continue
			}
			if _, err := tx.exec(`UPDATE specs SET source = ?, disabled = ?, spec = ?, updated_at = ? WHERE name = ?`,
				source, boolInt(sp.Disabled), it.js, now, sp.Name); err != nil {
				return fmt.Errorf("update spec %q: %w", sp.Name, translate(err))
			}
			if err := syncJobs(ctx, tx, sp, now); err != nil {
				return err
			}
			res.Changed = append(res.Changed, sp.Name)
		}

		// Withdraw the source's specs that are no longer declared.
		for name, old := range existing {
			if old.source != source || old.disabled || listed[name] {
				continue
			}
			if _, err := tx.exec(`UPDATE specs SET disabled = 1, updated_at = ? WHERE name = ?`, now, name); err != nil {
				return fmt.Errorf("disable spec %q: %w", name, translate(err))
			}
			if _, err := tx.exec(`UPDATE jobs SET disabled = 1 WHERE spec = ?`, name); err != nil {
				return fmt.Errorf("disable jobs of %q: %w", name, translate(err))
			}
			res.Disabled = append(res.Disabled, name)
		}
		sort.Strings(res.Disabled)
		return nil
	})
	if err != nil {
		return certfleet.SyncResult{}, fmt.Errorf("sync specs of %s: %w", source, err)
	}
	return res, nil
}

// syncJobs brings the jobs of a changed spec in line with it.
func syncJobs(ctx context.Context, tx *txn, sp certfleet.CertificateSpec, now int64) error {
	rows, err := tx.query(`SELECT id, key_type, target_revision, current_revision, disabled FROM jobs WHERE spec = ?`, sp.Name)
	if err != nil {
		return translate(err)
	}
	jobs := make(map[certfleet.KeyType]storedJob)
	for rows.Next() {
		var (
			j  storedJob
			kt string
		)
		if err := rows.Scan(&j.id, &kt, &j.targetRevision, &j.currentRevision, &j.disabled); err != nil {
			rows.Close()
			return translate(err)
		}
		jobs[certfleet.KeyType(kt)] = j
	}
	if err := rows.Close(); err != nil {
		return translate(err)
	}
	for _, kt := range sp.KeyTypes {
		rev := sp.Revision(kt)
		j, ok := jobs[kt]
		if !ok {
			if _, err := tx.exec(qInsertJob, sp.Name, string(kt), rev, now, boolInt(sp.Disabled)); err != nil {
				return fmt.Errorf("add job %s/%s: %w", sp.Name, kt, translate(err))
			}
			continue
		}
		// A current certificate of another revision (or none at all) is
		// due at once; otherwise the schedule stands.
		dueNow := j.currentRevision != rev
		if _, err := tx.exec(`UPDATE jobs SET target_revision = ?, disabled = ?,
			next_at = CASE WHEN ? THEN ? ELSE next_at END WHERE id = ?`,
			rev, boolInt(sp.Disabled), dueNow, now, j.id); err != nil {
			return fmt.Errorf("update job %s/%s: %w", sp.Name, kt, translate(err))
		}
	}
	for kt, j := range jobs {
		if slices.Contains(sp.KeyTypes, kt) || j.disabled {
			continue
		}
		if _, err := tx.exec(`UPDATE jobs SET disabled = 1 WHERE id = ?`, j.id); err != nil {
			return fmt.Errorf("disable job %s/%s: %w", sp.Name, kt, translate(err))
		}
	}
	return nil
}

func loadSpecs(ctx context.Context, tx *txn) (map[string]storedSpec, error) {
	rows, err := tx.query(`SELECT name, source, disabled, spec FROM specs`)
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
	db, err := s.reader()
	if err != nil {
		return certfleet.CertificateSpec{}, err
	}
	var (
		source, js string
		disabled   int
	)
	err = db.QueryRowContext(ctx, `SELECT source, disabled, spec FROM specs WHERE name = ?`, name).Scan(&source, &disabled, &js)
	if errors.Is(err, sql.ErrNoRows) {
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
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT source, disabled, spec FROM specs
		WHERE (?1 = '' OR name = ?1) AND (?2 = '' OR source = ?2) AND (?3 OR disabled = 0)
		ORDER BY name`, f.Name, f.Source, f.IncludeDisabled)
	if err != nil {
		return nil, fmt.Errorf("list specs: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.CertificateSpec
	for rows.Next() {
		var (
			source, js string
			disabled   int
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
