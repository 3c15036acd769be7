package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// The listing (CertificatePage, issue 13): a page of specs in name order
// from the cursor, joined with their jobs and current issuances in one
// statement. Every filter is answered by walking one index in spec name
// order (the driver) and checking the others on each row by primary key:
//
//   - Search walks spec_terms (term, spec) at the term;
//   - Failing walks jobs_failing (spec, key_type), the failing jobs only;
//   - Source walks specs_source (source, name), Tenant specs_tenant
//     (tenant, name); nothing else, the primary key.
//
// A page first finds how far listingScan rows of the driver reach from the
// cursor (the bound: an index-only walk), then reads the matches up to
// there. So a page costs at most listingScan index rows however rare the
// other filters are among the driver's rows; when the bound is reached
// before the page is full, the page is short and its Next is the bound.
const listingScan = 1000

// Walk bounds when nothing bounds a walk: every spec name (letters,
// digits, '.', '_', '-') sorts below "~" bytewise, and above "".
const (
	maxKey = "~"
	minKey = ""
)

// listDriver is the index a page walks.
type listDriver int

const (
	driveAll listDriver = iota
	driveTenant
	driveSource
	driveTerm
	driveFailing
)

// drive is what each driver walks: the rows, the key in spec name order,
// the condition that picks its range (the driver's value is $2 of the
// bound statement) and the index order.
//
// The tenant's and the source's ranges (rangeOf below) are row values on
// PostgreSQL, (tenant, name) > ($2, $1), not name > $1: its generic plan
// (a prepared statement after its fifth run) otherwise walked the primary
// key from the cursor, filtering on the tenant, the whole table for a
// small tenant. A row value only the (tenant, name) index answers. (The
// search term's range stays term = $5 AND spec > $1: its primary key is
// the one index that has the term first, and its row value made
// PostgreSQL read 5 times the pages.) cond is "true" where rangeOf says
// it all.
var drives = map[listDriver]struct{ from, boundFrom, key, prefix, pageValue, boundValue, cond, boundCond, order string }{
	driveAll:    {`specs s`, `specs s`, `s.name`, ``, ``, ``, `true`, `$2 = ''`, `s.name`},
	driveTenant: {`specs s`, `specs s`, `s.name`, `s.tenant`, `$2`, `$2`, `true`, `true`, `s.tenant, s.name`},
	driveSource: {`specs s`, `specs s`, `s.name`, `s.source`, `$3`, `$2`, `true`, `true`, `s.source, s.name`},
	driveTerm: {`spec_terms t JOIN specs s ON s.name = t.spec`, `spec_terms t`, `t.spec`, ``, ``, ``, `t.term = $5`, `t.term = $2`,
		`t.term, t.spec`},
	// A spec with several failing jobs is listed once, at its first.
	driveFailing: {`jobs f JOIN specs s ON s.name = f.spec`, `jobs f`, `f.spec`, ``, ``, ``, failingJob("f") + ` AND NOT EXISTS (SELECT 1 FROM jobs g
			WHERE g.spec = f.spec AND g.key_type < f.key_type AND ` + failingJob("g") + `)`, failingJob("f") + ` AND $2 = ''`, `f.spec, f.key_type`},
}

// failingJob is jobs_failing's condition on the job alias a (written as
// the index's, so that both databases see that the index answers it).
func failingJob(a string) string {
	return `NOT ` + a + `.disabled AND (` + a + `.failures > 0 OR ` + a + `.deploy_error <> '')`
}

const (
	listColumns = `s.name, s.source, s.disabled, s.spec, s.tenant,
		COALESCE(j.key_type, ''), COALESCE(j.target_revision, ''), COALESCE(j.current_revision, ''), j.next_at,
		COALESCE(j.failures, 0), COALESCE(j.last_error, ''), j.last_error_at, COALESCE(j.pending_order_url, ''),
		COALESCE(j.lease_owner, ''), j.lease_until, COALESCE(j.disabled, false), j.ari_start, j.ari_end,
		COALESCE(j.deploy_error, ''), COALESCE(j.deploy_failures, 0), j.deploy_failed_at, j.deploy_next_at,
		COALESCE(i.id, 0), COALESCE(i.serial, ''), COALESCE(i.fingerprint, ''), i.not_before, i.not_after, i.issued_at`
	// listFilter checks every filter on a row of any driver, by primary
	// key: $2 tenant, $3 source, $4 include withdrawn, $5 search term,
	// $6 failing.
	listFilter = `($2 = '' OR s.tenant = $2) AND ($3 = '' OR s.source = $3) AND ($4 OR NOT s.disabled)
		AND ($5 = '' OR EXISTS (SELECT 1 FROM spec_terms x WHERE x.term = $5 AND x.spec = s.name))
		AND (NOT $6 OR EXISTS (SELECT 1 FROM jobs y WHERE y.spec = s.name AND NOT y.disabled AND (y.failures > 0 OR y.deploy_error <> '')))`
	// listStatusFilter is the status filter, in the statements of a
	// query with a status only: $9 the status's rank (listStatus with
	// $10 now, $11 now + the warning window's cap or fixed length, $12
	// whether it is fixed). As "$9 < 0 OR ..." in every statement, it
	// cost PostgreSQL's generic plan of an unfiltered page a third more.
	listStatusFilter = ` AND ` + listStatus + ` = $9`
	// listStatus is the rank of the spec's status (certfleet.ListingStatuses,
	// CertificateListing.Status): the worst of its enabled jobs', read by
	// the (spec, key_type) index, their current certificates' validity
	// from the job row itself (current_not_before, current_not_after,
	// migration 0036). In the order of ListedJob.Status: expired
	// (not-after passed), expiring (within the window: not-after at most
	// $11, and, unless the window is fixed, left*3 <= lifetime, a third of
	// it), failing, pending (never issued), renewing (of another revision,
	// an order in flight, a lease held at $10), ok. A key type without a
	// job does not occur: a spec's jobs are written with it.
	listStatus = `COALESCE((SELECT max(CASE
			WHEN y.current_not_after <= $10 THEN 5
			WHEN y.current_not_after <= $11 AND ($12 OR (y.current_not_after - $10) * 3 <= y.current_not_after - y.current_not_before) THEN 4
			WHEN y.failures > 0 OR (y.current_id IS NOT NULL AND y.deploy_error <> '') THEN 3
			WHEN y.current_id IS NULL THEN 2
			WHEN y.current_revision <> y.target_revision OR y.pending_order_url <> '' OR (y.lease_owner <> '' AND y.lease_until > $10) THEN 1
			ELSE 0 END) FROM jobs y WHERE y.spec = s.name AND NOT y.disabled), 0)`
	listJoin = ` LEFT JOIN jobs j ON j.spec = s.name AND ($4 OR NOT j.disabled)
		LEFT JOIN issuances i ON i.id = j.current_id`
	// listJoinPG is listJoin as lateral joins behind OFFSET 0: PostgreSQL
	// then looks each page's jobs and issuances up by index whatever its
	// statistics say. Right after 100,000 specs were added, before
	// autoanalyze, it hashed every job: 0.45 s a page instead of 6 ms; a
	// plain lateral subquery is pulled up into the join and planned the
	// same, OFFSET 0 keeps it a per-row lookup.
	listJoinPG = ` LEFT JOIN LATERAL (SELECT * FROM jobs j WHERE j.spec = s.name AND ($4 OR NOT j.disabled) OFFSET 0) j ON true
		LEFT JOIN LATERAL (SELECT * FROM issuances i WHERE i.id = j.current_id OFFSET 0) i ON true`
)

// listKey names a page statement: its driver, direction and whether it
// filters by status (the bound statements never do).
type listKey struct {
	d            listDriver
	back, status bool
}

// listStatements are the page statements ($1 cursor, $2..$6 listFilter's,
// $7 limit, $8 bound, $9..$12 listStatusFilter's) and the bound
// statements ($1 cursor, $2 the driver's value) of every driver and
// direction.
var listStatements, boundStatements = func() (map[listKey]Q, map[listKey]Q) {
	page, bound := map[listKey]Q{}, map[listKey]Q{}
	for d, dr := range drives {
		for _, back := range []bool{false, true} {
			// rangeOf is the condition on the driver's range from lo to
			// hi (for a bound: to the end of the driver's value) in a
			// dialect's words. PostgreSQL: a row value on both sides and
			// no equality beside it (with "prefix = value" beside the
			// row value it started the walk at the value's first row,
			// not at the cursor). SQLite: the equality and the key
			// alone; it searches an index by (prefix = ? AND key > ?)
			// but not by a row value after an equality on its first
			// column. Either way, a source or tenant holding all
			// 100,000 names had each page walk its rows from the first.
			rangeOf := func(dialect Dialect, value, lo, hi string) string {
				after, upTo, end := ` > `, ` <= `, `'`+maxKey+`'`
				if back {
					after, upTo, end = ` < `, ` >= `, `'`+minKey+`'`
				}
				switch {
				case dr.prefix == "" && hi == "":
					return dr.key + after + lo
				case dr.prefix == "":
					return dr.key + after + lo + ` AND ` + dr.key + upTo + hi
				case dialect == SQLite && hi == "":
					return dr.prefix + ` = ` + value + ` AND ` + dr.key + after + lo
				case dialect == SQLite:
					return dr.prefix + ` = ` + value + ` AND ` + dr.key + after + lo + ` AND ` + dr.key + upTo + hi
				}
				if hi == "" {
					hi = end
				}
				key := `(` + dr.prefix + `, ` + dr.key + `)`
				return key + after + `(` + value + `, ` + lo + `) AND ` + key + upTo + `(` + value + `, ` + hi + `)`
			}
			order := dr.order
			if back {
				order = descending(dr.order)
			}
			for _, status := range []bool{false, true} {
				filter := listFilter
				if dr.prefix != "" {
					// The range is the driver's own filter. Said again
					// beside it, PostgreSQL's custom plan folds it to
					// "prefix = value" and starts the walk there.
					own := `(` + dr.pageValue + ` = '' OR ` + dr.prefix + ` = ` + dr.pageValue + `)`
					if !strings.Contains(filter, own) {
						panic("sqlstore: the listing filter lost " + own)
					}
					filter = strings.Replace(filter, own, `true`, 1)
				}
				if status {
					filter += listStatusFilter
				}
				inner := func(dialect Dialect) string {
					return `SELECT s.name, s.source, s.disabled, s.spec, s.tenant FROM ` + dr.from + `
				WHERE ` + dr.cond + ` AND ` + rangeOf(dialect, dr.pageValue, `$1`, `$8`) + ` AND ` + filter + `
				ORDER BY ` + order + ` LIMIT $7`
				}
				const end = ` ORDER BY s.name, j.key_type`
				// PostgreSQL is told $10's type: in "not_after - $10"
				// it could be a timestamp or an interval.
				page[listKey{d, back, status}] = SQLEach(`SELECT `+listColumns+` FROM (`+inner(SQLite)+`) s`+listJoin+end,
					`SELECT `+listColumns+` FROM (`+strings.ReplaceAll(inner(Postgres), `$10`, `$10::timestamptz`)+`) s`+listJoinPG+end)
			}
			// The bound walks the driver's index alone ($2 = '' where the
			// driver has no value: it is given all the same).
			bound[listKey{d, back, false}] = SQLEach(
				`SELECT `+dr.key+` FROM `+dr.boundFrom+` WHERE `+dr.boundCond+` AND `+rangeOf(SQLite, dr.boundValue, `$1`, ``)+
					` ORDER BY `+order+fmt.Sprintf(` LIMIT 1 OFFSET %d`, listingScan-1),
				`SELECT `+dr.key+` FROM `+dr.boundFrom+` WHERE `+dr.boundCond+` AND `+rangeOf(Postgres, dr.boundValue, `$1`, ``)+
					` ORDER BY `+order+fmt.Sprintf(` LIMIT 1 OFFSET %d`, listingScan-1))
		}
	}
	return page, bound
}()

// descending is an ORDER BY list in reverse.
func descending(order string) string {
	out := ""
	for i, c := range splitComma(order) {
		if i > 0 {
			out += ", "
		}
		out += c + " DESC"
	}
	return out
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 2 // ", "
		}
	}
	return append(out, s[start:])
}

// CertificatePage implements certfleet.NameIndex.
func (s *Store) CertificatePage(ctx context.Context, cq certfleet.CertificateQuery) (certfleet.ListingPage, error) {
	limit := cq.Limit
	switch {
	case limit < 0:
		return certfleet.ListingPage{}, certfleet.Errorf(certfleet.EINVALID, "list certificates: limit %d: give 1 to %d", limit, certfleet.MaxCertificatePage)
	case limit == 0:
		limit = certfleet.DefaultCertificatePage
	}
	limit = min(limit, certfleet.MaxCertificatePage)
	if s.db == nil {
		return certfleet.ListingPage{}, errNotOpen
	}
	rank := -1
	if cq.Status != "" {
		if rank = certfleet.ListingStatusRank(cq.Status); rank < 0 {
			return certfleet.ListingPage{}, certfleet.Errorf(certfleet.EINVALID, "list certificates: status %q: give one of %s", cq.Status, strings.Join(certfleet.ListingStatuses, ", "))
		}
	}
	now := cq.Now
	if now.IsZero() {
		now = time.Now()
	}
	fixed := cq.Warning.Fixed > 0
	warnAt := now.Add(cq.Warning.Max)
	if fixed {
		warnAt = now.Add(cq.Warning.Fixed)
	}
	term := certfleet.NormalizeSearch(cq.Search)
	if cq.Search != "" && term == "" {
		term = "*" // nothing is found by it
	}
	d, value := driveAll, ""
	switch {
	case term != "":
		d, value = driveTerm, term
	case cq.Failing:
		d = driveFailing
	case cq.Source != "":
		d, value = driveSource, cq.Source
	case cq.Tenant != "":
		d, value = driveTenant, cq.Tenant
	}
	back := cq.After == "" && cq.Before != ""
	cursor, end := cq.After, maxKey
	if back {
		cursor, end = cq.Before, minKey
	}
	key := listKey{d: d, back: back}
	var out certfleet.ListingPage
	err := s.db.View(ctx, func(q Querier) error {
		out = certfleet.ListingPage{}
		// How far listingScan rows of the driver reach.
		bound, more := end, true
		if err := q.QueryRow(boundStatements[key], cursor, value).Scan(&bound); noRows(err) {
			bound, more = end, false
		} else if err != nil {
			return err
		}
		args := []any{cursor, cq.Tenant, cq.Source, cq.IncludeDisabled, term, cq.Failing, limit + 1, bound}
		pageKey := key
		if rank >= 0 {
			args, pageKey.status = append(args, rank, now, warnAt, fixed), true
		}
		rows, err := q.Query(listStatements[pageKey], args...)
		if err != nil {
			return err
		}
		list, err := scanListing(rows)
		if err != nil {
			return err
		}
		switch {
		case len(list) > limit && back:
			list = list[1:]
			out.Next = list[0].Spec.Name
		case len(list) > limit:
			list = list[:limit]
			out.Next = list[limit-1].Spec.Name
		case more:
			out.Next = bound
		}
		out.Certificates = list
		if !cq.Chains {
			return nil
		}
		return addChains(q, list)
	})
	if err != nil {
		return certfleet.ListingPage{}, fmt.Errorf("list certificates: %w", err)
	}
	return out, nil
}

// scanListing reads a page statement's rows: a row per job (or one for a
// spec without jobs), in spec name order.
func scanListing(rows Rows) ([]certfleet.CertificateListing, error) {
	defer rows.Close()
	var out []certfleet.CertificateListing
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
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Spec.Name != name {
			sp, err := decodeSpec(source, disabled, js, tenant)
			if err != nil {
				return nil, fmt.Errorf("certificate %q: %w", name, err)
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
	return out, rows.Err()
}
