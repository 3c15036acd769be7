package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.ListingExtras = (*Store)(nil)

// A page's extras (certfleet.ListingExtras, issue 13): one statement per
// kind for the whole page, the page's jobs or names given as one JSON
// array parameter (the dialects read JSON arrays alike, as in name.go),
// each row then looked up by index: jobs by (spec, key_type), attempts by
// attempts_job (job_id, id), waits by their primary key job_id, events by
// audit_events_certificate (certificate, at, id), reports and chains by
// their primary keys. (PostgreSQL takes a list of names or ids as
// = ANY (ARRAY(...)), an index condition: as IN (SELECT ...) it guessed
// 100 rows for the list and hashed it against a whole table, a sequential
// scan of every agent report or issuance for each page.)

// pageKeys is the page's jobs, from $1: a JSON array of [spec, key type]
// pairs, as a table k (spec, kt).
var pageKeys = Q{
	sqlite:   `WITH k (spec, kt) AS (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1)) `,
	postgres: `WITH k (spec, kt) AS (SELECT e->>0, e->>1 FROM jsonb_array_elements($1::jsonb) e) `,
}

// pageJobs joins the page's jobs with k.
const pageJobs = ` FROM k JOIN jobs j ON j.spec = k.spec AND j.key_type = k.kt`

var (
	// qPageAttempts: each job's newest $2 attempts. SQLite, without
	// lateral joins, keeps the attempts from the $2-th newest's id on,
	// found in attempts_job as the first is.
	qPageAttempts = SQLEach(
		pageKeys.sqlite+`SELECT j.spec, j.key_type, a.id, a.instance, a.started_at, a.finished_at, a.outcome, a.order_url, a.error, a.problem_type`+pageJobs+`
		JOIN attempts a ON a.job_id = j.id
		WHERE a.id >= COALESCE((SELECT b.id FROM attempts b WHERE b.job_id = j.id ORDER BY b.id DESC LIMIT 1 OFFSET $2 - 1), 0)
		ORDER BY j.spec, j.key_type, a.id DESC`,
		pageKeys.postgres+`SELECT j.spec, j.key_type, a.id, a.instance, a.started_at, a.finished_at, a.outcome, a.order_url, a.error, a.problem_type`+pageJobs+`
		CROSS JOIN LATERAL (SELECT * FROM attempts a WHERE a.job_id = j.id ORDER BY a.id DESC LIMIT $2) a
		ORDER BY j.spec, j.key_type, a.id DESC`)
	// qPageWaits: each job's waits, with their places (as qBudgetWaitsOf).
	qPageWaits = SQLEach(
		pageKeys.sqlite+pageWaits, pageKeys.postgres+pageWaits)
	pageWaits = `SELECT ` + waitColumns + `,
			(SELECT count(*) FROM rate_waits o WHERE o.ca = w.ca AND o.bucket = w.bucket AND o.ticket < w.ticket) + 1` + pageJobs + `
		JOIN rate_waits w ON w.job_id = j.id
		ORDER BY j.spec, j.key_type, w.ca, w.bucket, w.ticket`
	// qPageReasons: the Reason of each job's newest order_failed event
	// (for its key type or none); NULL without one. Each job's events
	// are walked newest first in audit_events_certificate, the
	// certificate's own. SQLite is told that index: it chose
	// audit_events_kind, every order_failed event of every certificate
	// newest first, for each row, until one of the row's: all of them
	// for a job without one (issue 13: two thirds of a failing
	// dashboard page's time with 2,000 certificates, growing with the
	// store's history).
	qPageReasons = SQLEach(pageKeys.sqlite+strings.Replace(pageReasons, `audit_events e`, `audit_events e INDEXED BY audit_events_certificate`, 1),
		pageKeys.postgres+pageReasons)
	pageReasons = `SELECT j.spec, j.key_type, (SELECT e.reason FROM audit_events e
			WHERE e.certificate = j.spec AND e.kind = '` + certfleet.EventOrderFailed + `' AND e.key_type IN (j.key_type, '')
			ORDER BY e.at DESC, e.id DESC LIMIT 1)` + pageJobs
	// qPageReports: the agents' reports of the certificates named in $1.
	qPageReports = SQLEach(
		`SELECT `+agentReportColumns+` FROM agent_reports WHERE spec IN (SELECT value FROM json_each($1)) ORDER BY spec, key_type, agent`,
		`SELECT `+agentReportColumns+` FROM agent_reports WHERE spec = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb))) ORDER BY spec, key_type, agent`)
	// qPageChains: the chains of the issuances whose ids are in $1.
	qPageChains = SQLEach(
		`SELECT id, chain_pem FROM issuances WHERE id IN (SELECT value FROM json_each($1))`,
		`SELECT id, chain_pem FROM issuances WHERE id = ANY (ARRAY(SELECT (jsonb_array_elements_text($1::jsonb))::bigint))`)
)

// PageExtras implements certfleet.ListingExtras: at most a statement for
// each field of q that lists something, in one read transaction.
func (s *Store) PageExtras(ctx context.Context, q certfleet.PageExtrasQuery) (certfleet.PageExtras, error) {
	for _, n := range []int{len(q.Attempts), len(q.Waits), len(q.Reasons), len(q.Reports)} {
		if n > certfleet.MaxCertificatePage {
			return certfleet.PageExtras{}, certfleet.Errorf(certfleet.EINVALID,
				"page extras: %d entries: give at most %d (a page's)", n, certfleet.MaxCertificatePage)
		}
	}
	per := q.AttemptsPer
	if per <= 0 {
		per = 1
	}
	if s.db == nil {
		return certfleet.PageExtras{}, errNotOpen
	}
	var out certfleet.PageExtras
	err := s.db.View(ctx, func(db Querier) error {
		out = certfleet.PageExtras{}
		if len(q.Attempts) > 0 {
			m, err := pageAttempts(db, q.Attempts, per)
			if err != nil {
				return fmt.Errorf("attempts: %w", err)
			}
			out.Attempts = m
		}
		if len(q.Waits) > 0 {
			m, err := pageWaitsOf(db, q.Waits)
			if err != nil {
				return fmt.Errorf("rate-limit waits: %w", err)
			}
			out.Waits = m
		}
		if len(q.Reasons) > 0 {
			m, err := pageReasonsOf(db, q.Reasons)
			if err != nil {
				return fmt.Errorf("failure reasons: %w", err)
			}
			out.Reasons = m
		}
		if len(q.Reports) > 0 {
			m, err := pageReportsOf(db, q.Reports)
			if err != nil {
				return fmt.Errorf("agent reports: %w", err)
			}
			out.Reports = m
		}
		return nil
	})
	if err != nil {
		return certfleet.PageExtras{}, fmt.Errorf("read a page's extras: %w", err)
	}
	return out, nil
}

// keysJSON is keys as pageKeys reads them.
func keysJSON(keys []certfleet.JobKey) string {
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.Spec, string(k.KeyType)}
	}
	b, _ := json.Marshal(pairs) // strings only: cannot fail
	return string(b)
}

func pageAttempts(db Querier, keys []certfleet.JobKey, per int) (map[certfleet.JobKey][]certfleet.Attempt, error) {
	rows, err := db.Query(qPageAttempts, keysJSON(keys), per)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[certfleet.JobKey][]certfleet.Attempt{}
	for rows.Next() {
		var (
			a                 certfleet.Attempt
			kt                string
			started, finished time.Time
		)
		if err := rows.Scan(&a.JobKey.Spec, &kt, &a.ID, &a.Instance, &started, &finished, &a.Outcome, &a.OrderURL, &a.Error, &a.ProblemType); err != nil {
			return nil, err
		}
		a.JobKey.KeyType, a.StartedAt, a.FinishedAt = certfleet.KeyType(kt), started, finished
		out[a.JobKey] = append(out[a.JobKey], a)
	}
	return out, rows.Err()
}

func pageWaitsOf(db Querier, keys []certfleet.JobKey) (map[certfleet.JobKey][]certfleet.BudgetWait, error) {
	rows, err := db.Query(qPageWaits, keysJSON(keys))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[certfleet.JobKey][]certfleet.BudgetWait{}
	for rows.Next() {
		var (
			w  certfleet.BudgetWait
			kt string
		)
		if err := rows.Scan(&w.Job.Spec, &kt, &w.CA, &w.Bucket, &w.Name, &w.Ticket, &w.Since, &w.Turn, &w.Place); err != nil {
			return nil, err
		}
		w.Job.KeyType = certfleet.KeyType(kt)
		out[w.Job] = append(out[w.Job], w)
	}
	return out, rows.Err()
}

func pageReasonsOf(db Querier, keys []certfleet.JobKey) (map[certfleet.JobKey]string, error) {
	rows, err := db.Query(qPageReasons, keysJSON(keys))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[certfleet.JobKey]string{}
	for rows.Next() {
		var (
			k      certfleet.JobKey
			kt     string
			reason *string
		)
		if err := rows.Scan(&k.Spec, &kt, &reason); err != nil {
			return nil, err
		}
		if reason != nil {
			k.KeyType = certfleet.KeyType(kt)
			out[k] = *reason
		}
	}
	return out, rows.Err()
}

func pageReportsOf(db Querier, names []string) (map[string][]certfleet.AgentReport, error) {
	b, _ := json.Marshal(names) // strings only: cannot fail
	rows, err := db.Query(qPageReports, string(b))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]certfleet.AgentReport{}
	for rows.Next() {
		r, err := scanAgentReport(rows)
		if err != nil {
			return nil, err
		}
		out[r.Certificate] = append(out[r.Certificate], r)
	}
	return out, rows.Err()
}

// addChains reads the chains of a page's current certificates
// (CertificateQuery.Chains) in one statement.
func addChains(db Querier, list []certfleet.CertificateListing) error {
	var ids []int64
	for i := range list {
		for _, j := range list[i].Jobs {
			if j.Current.IssuanceID != 0 {
				ids = append(ids, j.Current.IssuanceID)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	b, _ := json.Marshal(ids) // numbers only: cannot fail
	rows, err := db.Query(qPageChains, string(b))
	if err != nil {
		return err
	}
	defer rows.Close()
	chains := make(map[int64][]byte, len(ids))
	for rows.Next() {
		var (
			id    int64
			chain []byte
		)
		if err := rows.Scan(&id, &chain); err != nil {
			return err
		}
		chains[id] = chain
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range list {
		for k := range list[i].Jobs {
			if j := &list[i].Jobs[k]; j.Current.IssuanceID != 0 {
				j.ChainPEM = chains[j.Current.IssuanceID]
			}
		}
	}
	return nil
}
