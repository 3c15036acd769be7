package sqlstore

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/seal"
)

// The seal pass (issue 17): a store that held private keys before it had a
// master key keeps them as plaintext PEM until each is written again, which
// for an archived certificate is never. SealPlaintextKeys seals every one of
// them, a batch at a time, each batch one committed transaction, so that a
// crash (kill -9) loses at most the batch in flight and the next pass
// continues where it stopped: what is left is found again by its missing
// seal prefix, not by a cursor kept somewhere. Once nothing plaintext is
// left, the database is compacted (Compacter), because sealing a row does
// not erase the plaintext it replaced: SQLite keeps it in free pages and
// in the WAL, PostgreSQL in dead tuples.

// DefaultSealBatch is SealPassOptions.Batch's default: small enough that
// one batch's transaction holds the writer briefly (a few milliseconds),
// large enough that 100,000 keys take a few hundred transactions.
const DefaultSealBatch = 200

// SealPassOptions configures SealPlaintextKeys.
type SealPassOptions struct {
	// Batch is how many keys one transaction seals; default
	// DefaultSealBatch.
	Batch int
	// Progress, when set, is called after each committed batch (for the
	// log of a long pass).
	Progress func(SealProgress)
}

// SealProgress is where a pass stands after a committed batch.
type SealProgress struct {
	// Column is the column being sealed, e.g. "issuances.key_pem".
	Column string
	// Sealed is how many keys this pass has sealed so far, Total how many
	// were plaintext when it started.
	Sealed, Total int
}

// SealPassResult is what a pass did.
type SealPassResult struct {
	// Sealed is how many keys this pass sealed, by column.
	Sealed map[string]int
	// Remaining is how many keys are still plaintext after the pass
	// (written meanwhile by an instance without the master key).
	Remaining int
	// Compacted reports whether the database was compacted (a pass now or
	// an earlier, interrupted one had sealed keys).
	Compacted bool
}

// Total is the number of keys the pass sealed.
func (r SealPassResult) Total() int {
	n := 0
	for _, v := range r.Sealed {
		n += v
	}
	return n
}

// Compacter is a DB that can rewrite tables so that nothing of the values
// they held before remains in the database's files: SQLite VACUUMs the file
// and truncates the WAL, PostgreSQL runs VACUUM FULL of the tables. It
// runs outside any transaction and may block writers while it runs.
type Compacter interface {
	Compact(ctx context.Context, tables []string) error
}

// keyColumn is one column that holds private keys, with the SQL to find its
// plaintext values a page at a time and to seal one value in place.
type keyColumn struct {
	name  string // table.column, as in seal's AAD
	table string
	// count counts the plaintext values; args: seal.Prefix().
	count Q
	// page selects up to $n plaintext values after the cursor, in cursor
	// order; args: seal.Prefix(), cursor..., limit. scan reads one row.
	page Q
	scan func(r Rows) (cursor []any, aad, value []byte, err error)
	// update seals one value in place if it is still the plaintext read
	// (a concurrent write wins); args: sealed, cursor..., plaintext.
	update Q
	// start is the cursor before the first row.
	start []any
}

// plaintext is the SQL condition for a plaintext value of column c: not
// NULL, not empty, and not starting with the seal prefix ($1).
func plaintext(c string) string {
	return c + ` IS NOT NULL AND length(` + c + `) > 0 AND substr(` + c + `, 1, 3) <> $1`
}

// keyColumns are every column where certfleet keeps a private key. A new
// one is added here, so that the seal pass and PlaintextKeys cover it. (Secrets and EAB MAC keys are never
// stored plaintext: SealSecret refuses without a master key.)
var keyColumns = []keyColumn{
	{
		name: "issuances.key_pem", table: "issuances", start: []any{int64(0)},
		count: SQL(`SELECT count(*) FROM issuances WHERE ` + plaintext("key_pem")),
		page: SQL(`SELECT id, spec, key_type, fingerprint, key_pem FROM issuances
			WHERE ` + plaintext("key_pem") + ` AND id > $2 ORDER BY id LIMIT $3`),
		scan: func(r Rows) ([]any, []byte, []byte, error) {
			var id int64
			var spec, kt, fp string
			var v []byte
			err := r.Scan(&id, &spec, &kt, &fp, &v)
			return []any{id}, issuanceAAD(spec, kt, fp), v, err
		},
		update: SQL(`UPDATE issuances SET key_pem = $1 WHERE id = $2 AND key_pem = $3`),
	},
	{
		name: "jobs.pending_key", table: "jobs", start: []any{int64(0)},
		count: SQL(`SELECT count(*) FROM jobs WHERE ` + plaintext("pending_key")),
		page: SQL(`SELECT id, spec, key_type, pending_order_url, pending_key FROM jobs
			WHERE ` + plaintext("pending_key") + ` AND id > $2 ORDER BY id LIMIT $3`),
		scan: func(r Rows) ([]any, []byte, []byte, error) {
			var id int64
			var spec, kt, order string
			var v []byte
			err := r.Scan(&id, &spec, &kt, &order, &v)
			return []any{id}, pendingKeyAAD(spec, kt, order), v, err
		},
		update: SQL(`UPDATE jobs SET pending_key = $1 WHERE id = $2 AND pending_key = $3`),
	},
	{
		name: "accounts.key_pem", table: "accounts", start: []any{"", ""},
		count: SQL(`SELECT count(*) FROM accounts WHERE ` + plaintext("key_pem")),
		page: SQL(`SELECT ca, name, key_pem FROM accounts
			WHERE ` + plaintext("key_pem") + ` AND (ca > $2 OR (ca = $2 AND name > $3)) ORDER BY ca, name LIMIT $4`),
		scan: func(r Rows) ([]any, []byte, []byte, error) {
			var ca, name string
			var v []byte
			err := r.Scan(&ca, &name, &v)
			return []any{ca, name}, accountAAD(ca, name), v, err
		},
		update: SQL(`UPDATE accounts SET key_pem = $1 WHERE ca = $2 AND name = $3 AND key_pem = $4`),
	},
	{
		name: "accounts.pending_key", table: "accounts", start: []any{"", ""},
		count: SQL(`SELECT count(*) FROM accounts WHERE ` + plaintext("pending_key")),
		page: SQL(`SELECT ca, name, pending_key FROM accounts
			WHERE ` + plaintext("pending_key") + ` AND (ca > $2 OR (ca = $2 AND name > $3)) ORDER BY ca, name LIMIT $4`),
		scan: func(r Rows) ([]any, []byte, []byte, error) {
			var ca, name string
			var v []byte
			err := r.Scan(&ca, &name, &v)
			return []any{ca, name}, pendingAccountAAD(ca, name), v, err
		},
		update: SQL(`UPDATE accounts SET pending_key = $1 WHERE ca = $2 AND name = $3 AND pending_key = $4`),
	},
	{
		name: "identity_cas.key_pem", table: "identity_cas", start: []any{""},
		count: SQL(`SELECT count(*) FROM identity_cas WHERE ` + plaintext("key_pem")),
		page: SQL(`SELECT id, key_pem FROM identity_cas
			WHERE ` + plaintext("key_pem") + ` AND id > $2 ORDER BY id LIMIT $3`),
		scan: func(r Rows) ([]any, []byte, []byte, error) {
			var id string
			var v []byte
			err := r.Scan(&id, &v)
			return []any{id}, identityCAAAD(id), v, err
		},
		update: SQL(`UPDATE identity_cas SET key_pem = $1 WHERE id = $2 AND key_pem = $3`),
	},
}

var (
	qSealPassOwe = SQL(`INSERT INTO seal_pass (id, compact_owed, sealed, updated_at) VALUES (1, 1, $1, $2)
		ON CONFLICT (id) DO UPDATE SET compact_owed = 1, sealed = seal_pass.sealed + excluded.sealed, updated_at = excluded.updated_at`)
	qSealPassOwed      = SQL(`SELECT compact_owed FROM seal_pass WHERE id = 1`)
	qSealPassCompacted = SQL(`UPDATE seal_pass SET compact_owed = 0, updated_at = $1 WHERE id = 1`)
)

// PlaintextKeys counts the private keys stored unsealed, by column (only
// columns with any). A store with a master key that reports any is not
// encrypted at rest, whatever its configuration says.
func (s *Store) PlaintextKeys(ctx context.Context) (map[string]int, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, c := range keyColumns {
		var n int
		if err := q.QueryRow(c.count, seal.Prefix()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count plaintext keys in %s: %w", c.name, err)
		}
		if n > 0 {
			out[c.name] = n
		}
	}
	return out, nil
}

// SealPlaintextKeys seals every private key stored unsealed (before the
// store had a master key), in batches of opts.Batch keys, each batch one
// transaction, then compacts the database so that the plaintext the rows
// held is gone from its files too. It is idempotent and resumable: run
// again after a crash it seals what is left, and compacts if an earlier
// pass sealed keys and did not get to compact. Without a master key it
// fails with EINVALID. A value changed by someone else between the read
// and the update is left to them (and counted in Remaining if it is
// plaintext). Errors never hold key material.
func (s *Store) SealPlaintextKeys(ctx context.Context, opts SealPassOptions) (SealPassResult, error) {
	res := SealPassResult{Sealed: map[string]int{}}
	if s.db == nil {
		return res, errNotOpen
	}
	if s.sealer == nil {
		return res, certfleet.Errorf(certfleet.EINVALID, "sealing stored keys needs a master key: set master_key_file (or CERTFLEET_MASTER_KEY); see docs/keys-at-rest.md")
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultSealBatch
	}
	before, err := s.PlaintextKeys(ctx)
	if err != nil {
		return res, err
	}
	total := 0
	for _, n := range before {
		total += n
	}
	done := 0
	for _, c := range keyColumns {
		if before[c.name] == 0 {
			continue
		}
		cursor := c.start
		for {
			n, next, err := s.sealBatch(ctx, c, cursor, batch)
			if err != nil {
				return res, fmt.Errorf("seal plaintext keys in %s (%d of %d sealed so far; run again to continue): %w", c.name, done, total, err)
			}
			if next == nil {
				break
			}
			cursor = next
			res.Sealed[c.name] += n
			done += n
			if opts.Progress != nil {
				opts.Progress(SealProgress{Column: c.name, Sealed: done, Total: total})
			}
		}
	}
	if res.Compacted, err = s.compactIfOwed(ctx); err != nil {
		return res, err
	}
	left, err := s.PlaintextKeys(ctx)
	if err != nil {
		return res, err
	}
	for _, n := range left {
		res.Remaining += n
	}
	return res, nil
}

// sealBatch seals up to limit plaintext values of c after cursor in one
// transaction, and marks a compaction owed in the same transaction. It
// returns how many it sealed and the cursor of the last row read (nil when
// there was none).
func (s *Store) sealBatch(ctx context.Context, c keyColumn, cursor []any, limit int) (int, []any, error) {
	q, err := s.read(ctx)
	if err != nil {
		return 0, nil, err
	}
	args := append([]any{seal.Prefix()}, cursor...)
	rows, err := q.Query(c.page, append(args, limit)...)
	if err != nil {
		return 0, nil, err
	}
	type item struct {
		cur           []any
		sealed, plain []byte
	}
	var items []item
	var last []any
	for rows.Next() {
		cur, aad, v, err := c.scan(rows)
		if err != nil {
			rows.Close()
			return 0, nil, err
		}
		last = cur
		if seal.IsSealed(v) {
			continue // the SQL prefix test and IsSealed agree; be safe
		}
		sealed, err := s.sealKey(v, aad)
		if err != nil {
			rows.Close()
			return 0, nil, err
		}
		items = append(items, item{cur: cur, sealed: sealed, plain: v})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	if last == nil {
		return 0, nil, nil
	}
	n := 0
	err = s.write(ctx, func(tx Tx) error {
		n = 0
		for _, it := range items {
			a := append([]any{it.sealed}, it.cur...)
			changed, err := tx.Exec(c.update, append(a, it.plain)...)
			if err != nil {
				return err
			}
			n += int(changed)
		}
		if n > 0 {
			_, err := tx.Exec(qSealPassOwe, n, s.now())
			return err
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return n, last, nil
}

// compactIfOwed compacts the database when a pass sealed keys since the last
// compaction, then records that none is owed.
func (s *Store) compactIfOwed(ctx context.Context) (bool, error) {
	q, err := s.read(ctx)
	if err != nil {
		return false, err
	}
	var owed int
	if err := q.QueryRow(qSealPassOwed).Scan(&owed); noRows(err) || (err == nil && owed == 0) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("read seal pass state: %w", err)
	}
	if c, ok := s.db.(Compacter); ok {
		tables := []string{}
		seen := map[string]bool{}
		for _, kc := range keyColumns {
			if !seen[kc.table] {
				seen[kc.table] = true
				tables = append(tables, kc.table)
			}
		}
		if err := c.Compact(ctx, tables); err != nil {
			return false, fmt.Errorf("compact the database after sealing keys (the plaintext they replaced may remain in its files until this succeeds; run again): %w", err)
		}
	}
	if err := s.write(ctx, func(tx Tx) error {
		_, err := tx.Exec(qSealPassCompacted, s.now())
		return err
	}); err != nil {
		return false, fmt.Errorf("record the compaction after sealing keys: %w", err)
	}
	return true, nil
}
