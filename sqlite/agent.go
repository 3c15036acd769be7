package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/certfleet/certfleet"
)

var _ certfleet.FleetStore = (*Store)(nil)

const agentReportColumns = `agent, spec, key_type, serial, fingerprint, not_after, installed_at, commands, error, reported_at, token_id`

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
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.exec(`INSERT INTO agent_reports (`+agentReportColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (spec, key_type, agent) DO UPDATE SET serial = excluded.serial, fingerprint = excluded.fingerprint,
				not_after = excluded.not_after, installed_at = excluded.installed_at, commands = excluded.commands,
				error = excluded.error, reported_at = excluded.reported_at, token_id = excluded.token_id`,
			r.Agent, r.Certificate, string(r.KeyType), r.Serial, r.Fingerprint, ts(r.NotAfter), ts(r.InstalledAt),
			string(cmds), r.Error, tsReq(at), r.TokenID)
		if err != nil {
			return fmt.Errorf("store report of agent %s for %s: %w", r.Agent, r.Certificate, translate(err))
		}
		return nil
	})
}

// ForgetAgent implements certfleet.FleetStore.
func (s *Store) ForgetAgent(ctx context.Context, agent string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.exec(`DELETE FROM agent_reports WHERE agent = ?`, agent)
		if err != nil {
			return translate(err)
		}
		n, err = res.RowsAffected()
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
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT `+agentReportColumns+` FROM agent_reports
		WHERE (? = '' OR agent = ?) AND (? = '' OR spec = ?) ORDER BY spec, key_type, agent`,
		f.Agent, f.Agent, f.Certificate, f.Certificate)
	if err != nil {
		return nil, fmt.Errorf("list agent reports: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.AgentReport
	for rows.Next() {
		var (
			r                       certfleet.AgentReport
			kt, cmds                string
			notAfter, installed, at sql.NullInt64
		)
		if err := rows.Scan(&r.Agent, &r.Certificate, &kt, &r.Serial, &r.Fingerprint, &notAfter, &installed, &cmds, &r.Error, &at, &r.TokenID); err != nil {
			return nil, fmt.Errorf("list agent reports: %w", translate(err))
		}
		if err := json.Unmarshal([]byte(cmds), &r.Commands); err != nil {
			return nil, fmt.Errorf("decode commands of agent %s's report for %s: %w", r.Agent, r.Certificate, err)
		}
		r.KeyType, r.NotAfter, r.InstalledAt, r.ReportedAt = certfleet.KeyType(kt), fromTS(notAfter), fromTS(installed), fromTS(at)
		out = append(out, r)
	}
	return out, translate(rows.Err())
}
