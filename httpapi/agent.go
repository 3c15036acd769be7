package httpapi

import (
	"net/http"
	"slices"
	"time"

	"github.com/certfleet/certfleet"
)

// ReportRequest is the JSON body of POST /v1/agents/{agent}/report: what
// the agent installed for one name's certificate of one key type.
// Unknown fields are refused.
type ReportRequest struct {
	// Name is the name the agent watches (it must be within the token's
	// names); the server resolves it to its certificate.
	Name string `json:"name"`
	// KeyType is the installed certificate's key type; it may be left out
	// for a certificate with one key type.
	KeyType     string    `json:"key_type,omitempty"`
	Serial      string    `json:"serial,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	InstalledAt time.Time `json:"installed_at,omitzero"`
	// Commands are the results of the commands run after the last change,
	// at most certfleet.MaxAgentCommands.
	Commands []certfleet.AgentCommand `json:"commands,omitempty"`
	// Error is the agent's last failure for this certificate, if any.
	Error string `json:"error,omitempty"`
}

// FleetEntry is one agent's copy of a certificate, in a name's status.
type FleetEntry struct {
	Agent       string            `json:"agent"`
	KeyType     certfleet.KeyType `json:"key_type"`
	Serial      string            `json:"serial,omitempty"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	// Current is true when the agent has the current certificate of its
	// key type; false means it still runs an older one (or none).
	Current     bool                     `json:"current"`
	InstalledAt time.Time                `json:"installed_at,omitzero"`
	LastSeen    time.Time                `json:"last_seen"`
	Commands    []certfleet.AgentCommand `json:"commands,omitempty"`
	Error       string                   `json:"error,omitempty"`
	// Identity is the host identity the agent reported with (idn_…, or
	// ext:SUBJECT for a client certificate of the operator's CA); empty
	// for an agent with a bearer token.
	Identity string `json:"identity,omitempty"`
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// report stores an agent's report. It needs read-certs and a token that
// covers the name: an agent may only speak of certificates it may read,
// and the report is stored with the token's ID, so it is traceable.
func (s *Server) report(w http.ResponseWriter, r *http.Request, p principal) {
	fs, ok := s.Store.(certfleet.FleetStore)
	if !ok {
		s.fail(w, r, false, problemf(certfleet.EUNAVAILABLE, "this server's store does not keep agent reports"))
		return
	}
	agent := r.PathValue("agent")
	if err := certfleet.ValidateAgentName(agent); err != nil {
		s.fail(w, r, false, problemf(certfleet.EINVALID, "%v", err))
		return
	}
	var req ReportRequest
	if prob := decodeJSON(r, &req); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	id, err := certfleet.ParseIdentifier(req.Name)
	if err != nil {
		s.fail(w, r, false, problemf(certfleet.EINVALID, "name: %v", err))
		return
	}
	if !p.token.Covers(id.Value) {
		s.fail(w, r, false, outOfScope(id.Value))
		return
	}
	if len(req.Commands) > certfleet.MaxAgentCommands {
		s.fail(w, r, false, problemf(certfleet.EINVALID, "commands: at most %d", certfleet.MaxAgentCommands))
		return
	}
	ctx := r.Context()
	sp := s.managedSpec(w, r, p, id.Value, "agent report")
	if sp == nil {
		return
	}
	var kt certfleet.KeyType
	switch {
	case req.KeyType != "":
		kt, err = certfleet.ParseKeyType(req.KeyType)
		if err != nil || !slices.Contains(sp.KeyTypes, kt) {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "key_type %q: certificate %s has key types %v", req.KeyType, sp.Name, sp.KeyTypes))
			return
		}
	case len(sp.KeyTypes) == 1:
		kt = sp.KeyTypes[0]
	default:
		s.fail(w, r, false, problemf(certfleet.EINVALID, "key_type: certificate %s is dual (%v); say which one", sp.Name, sp.KeyTypes))
		return
	}
	cmds := make([]certfleet.AgentCommand, len(req.Commands))
	for i, c := range req.Commands {
		c.Error = clip(c.Error, certfleet.MaxAgentErrorLen)
		if len(c.Argv) > 64 {
			c.Argv = c.Argv[:64]
		}
		cmds[i] = c
	}
	// The stores keep times in whole microseconds: truncate as they do, or a
	// report compared with the stored previous one (agentEvent) always
	// looks like a new install (agents send nanoseconds).
	rep := certfleet.AgentReport{Agent: agent, Certificate: sp.Name, KeyType: kt,
		Serial: clip(req.Serial, 128), Fingerprint: clip(req.Fingerprint, 128), NotAfter: req.NotAfter,
		InstalledAt: req.InstalledAt.Truncate(time.Microsecond), Commands: cmds,
		Error: clip(req.Error, certfleet.MaxAgentErrorLen), ReportedAt: s.Now(), TokenID: p.token.ID}
	prev, err := previousReport(ctx, fs, rep)
	if err != nil {
		s.internal(w, r, "agent report", err)
		return
	}
	if err := fs.PutAgentReport(ctx, rep); err != nil {
		s.internal(w, r, "agent report", err)
		return
	}
	if e, ok := agentEvent(prev, rep); ok {
		e.Actor = "agent:" + agent
		s.emit(r, p, e)
	}
	if s.OnAgentReport != nil {
		s.OnAgentReport(rep) // every check-in, for metrics
	}
	w.WriteHeader(http.StatusNoContent)
}

// fleetEntries lists the agents' copies of a certificate from their
// reports; current maps each key type to its current certificate's
// fingerprint.
func fleetEntries(reps []certfleet.AgentReport, current map[certfleet.KeyType]string) []FleetEntry {
	var out []FleetEntry
	for _, r := range reps {
		e := FleetEntry{Agent: r.Agent, KeyType: r.KeyType, Serial: certfleet.FormatSerial(r.Serial), Fingerprint: r.Fingerprint,
			Current:     r.Fingerprint != "" && r.Fingerprint == current[r.KeyType],
			InstalledAt: r.InstalledAt, LastSeen: r.ReportedAt, Commands: r.Commands, Error: r.Error}
		if certfleet.IsIdentityID(r.TokenID) {
			e.Identity = r.TokenID
		}
		out = append(out, e)
	}
	return out
}
