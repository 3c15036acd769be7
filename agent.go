package certfleet

import (
	"context"
	"fmt"
	"regexp"
	"time"
)

// AgentReport is what one agent (certfleet agent, on a host) last said it
// installed for one certificate's key type: the fleet view compares it with
// the current issuance to show which hosts still run an old certificate.
// One report is kept per (Agent, Certificate, KeyType); a newer report
// replaces it.
type AgentReport struct {
	// Agent names the agent (its host, by default); see ValidateAgentName.
	Agent string `json:"agent"`
	// Certificate is the spec name; KeyType the installed certificate's.
	Certificate string  `json:"certificate"`
	KeyType     KeyType `json:"key_type"`
	// Serial (hex, lower case) and Fingerprint (SHA-256 of the leaf's DER,
	// hex) identify the certificate on the host's disk; empty when the
	// agent has nothing installed yet.
	Serial      string `json:"serial,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// NotAfter is the installed certificate's expiry.
	NotAfter time.Time `json:"not_after,omitzero"`
	// InstalledAt is when the agent wrote the files (zero: nothing yet).
	InstalledAt time.Time `json:"installed_at,omitzero"`
	// Commands are the results of the commands run after the last change
	// (or the last retry of failed ones).
	Commands []AgentCommand `json:"commands,omitempty"`
	// Error is the agent's last failure for this certificate (files it
	// could not write, a command that failed); "" when all is well.
	Error string `json:"error,omitempty"`
	// ReportedAt is when the server received the report: the agent's last
	// check-in. Set by the server.
	ReportedAt time.Time `json:"reported_at"`
	// TokenID is the API token the report came with. Set by the server.
	TokenID string `json:"token_id"`
}

// AgentCommand is the outcome of one command an agent ran.
type AgentCommand struct {
	Argv     []string  `json:"argv"`
	ExitCode int       `json:"exit_code"` // -1: did not exit by itself
	Error    string    `json:"error,omitempty"`
	RanAt    time.Time `json:"ran_at"`
}

// MaxAgentCommands bounds the commands of one report, and
// MaxAgentErrorLen the length of its texts, so a report stays small.
const (
	MaxAgentCommands = 16
	MaxAgentErrorLen = 1024
)

var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateAgentName checks an agent's name: 1 to 128 letters, digits, '.',
// '_' or '-', starting with a letter or digit (a host name fits).
func ValidateAgentName(name string) error {
	if !agentNameRE.MatchString(name) {
		return fmt.Errorf("agent name %q: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// AgentReportFilter selects reports. Zero fields match everything.
type AgentReportFilter struct {
	Agent       string
	Certificate string
}

// FleetStore keeps the agents' reports. Safe for concurrent use.
type FleetStore interface {
	// PutAgentReport stores r, replacing the report of the same (Agent,
	// Certificate, KeyType). It is durable when it returns.
	PutAgentReport(ctx context.Context, r AgentReport) error
	// AgentReports lists the reports f selects, ordered by certificate,
	// key type, then agent.
	AgentReports(ctx context.Context, f AgentReportFilter) ([]AgentReport, error)
	// ForgetAgent deletes every report of agent (a host taken out of
	// service), so that it no longer counts as running an old
	// certificate; it returns how many were deleted, ENOTFOUND when none.
	// An agent that reports again is known again.
	ForgetAgent(ctx context.Context, agent string) (int, error)
}
