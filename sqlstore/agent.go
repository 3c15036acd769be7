package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/certfleet/certfleet"
)

var _ certfleet.FleetStore = (*Store)(nil)

const agentReportColumns = `agent, spec, key_type, serial, fingerprint, not_after, installed_at, commands, error, reported_at, token_id`

var (
	qPutAgentReport = SQL(`INSERT INTO agent_reports (` + agentReportColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (spec, key_type, agent) DO UPDATE SET serial = excluded.serial, fingerprint = excluded.fingerprint,
			not_after = excluded.not_after, installed_at = excluded.installed_at, commands = excluded.commands,
			error = excluded.error, reported_at = excluded.reported_at, token_id = excluded.token_id`)
	qForgetAgent  = SQL(`DELETE FROM agent_reports WHERE agent = $1`)
	qAgentReports = SQL(`SELECT ` + agentReportColumns + ` FROM agent_reports
		WHERE ($1 = '' OR agent = $1) AND ($2 = '' OR spec = $2) ORDER BY spec, key_type, agent`)
	// qSpecAgentReports is qAgentReports for one certificate ($2 set): its
	// reports by the index, not a walk over every report (issue 13: the
	// alert rounds over single certificates).
	qSpecAgentReports = SQL(`SELECT ` + agentReportColumns + ` FROM agent_reports
		WHERE spec = $2 AND ($1 = '' OR agent = $1) ORDER BY spec, key_type, agent`)
)

// PutAgentReport implements certfleet.FleetStore.
func (s *Store) PutAgentReport(ctx context.Context, r certfleet.AgentReport) error {
	if r.Agent == "" || r.Certificate == "" || r.KeyType == "" {
		return certfleet.Errorf(certfleet.EINVALID, "agent report: agent, certificate and key type required")
	}
	cmds, err := json.Marshal(r.Commands)
	if err != nil {
		return fmt.Errorf("encode agent report commands: %w", err)
	}
	at := r.ReportedAt
	if at.IsZero() {
		at = s.now()
	}
	err = s.write(ctx, func(tx Tx) error {
		_, err := tx.Exec(qPutAgentReport,
			r.Agent, r.Certificate, string(r.KeyType), r.Serial, r.Fingerprint, NullTime(r.NotAfter), NullTime(r.InstalledAt),
			string(cmds), r.Error, at, r.TokenID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store report of agent %s for %s: %w", r.Agent, r.Certificate, err)
	}
	return nil
}

// ForgetAgent implements certfleet.FleetStore.
func (s *Store) ForgetAgent(ctx context.Context, agent string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.Exec(qForgetAgent, agent)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("forget agent %s: %w", agent, err)
	}
	if n == 0 {
		return 0, certfleet.Errorf(certfleet.ENOTFOUND, "agent %q has no reports (see the fleet table of certfleet status)", agent)
	}
	return int(n), nil
}

// AgentReports implements certfleet.FleetStore.
func (s *Store) AgentReports(ctx context.Context, f certfleet.AgentReportFilter) ([]certfleet.AgentReport, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	stmt := qAgentReports
	if f.Certificate != "" {
		stmt = qSpecAgentReports
	}
	rows, err := q.Query(stmt, f.Agent, f.Certificate)
	if err != nil {
		return nil, fmt.Errorf("list agent reports: %w", err)
	}
	defer rows.Close()
	var out []certfleet.AgentReport
	for rows.Next() {
		r, err := scanAgentReport(rows)
		if err != nil {
			return nil, fmt.Errorf("list agent reports: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agent reports: %w", err)
	}
	return out, nil
}

// scanAgentReport reads a row of agentReportColumns.
func scanAgentReport(rows Rows) (certfleet.AgentReport, error) {
	var (
		r        certfleet.AgentReport
		kt, cmds string
	)
	if err := rows.Scan(&r.Agent, &r.Certificate, &kt, &r.Serial, &r.Fingerprint, &r.NotAfter, &r.InstalledAt, &cmds, &r.Error, &r.ReportedAt, &r.TokenID); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(cmds), &r.Commands); err != nil {
		return r, fmt.Errorf("decode commands of agent %s's report for %s: %w", r.Agent, r.Certificate, err)
	}
	r.KeyType = certfleet.KeyType(kt)
	return r, nil
}
