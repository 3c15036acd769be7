package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// AuditPage is a page of GET /v1/audit: events newest first; Next, when
// set, is the URL of the next (older) page, with the same filters and
// before_id set to the last event's ID.
type AuditPage struct {
	Events []certfleet.Event `json:"events"`
	Next   string            `json:"next,omitempty"`
}

// audit serves GET /v1/audit to admin tokens (the route's permission): the
// whole trail, whatever the token's names, since it records who did what
// to every certificate. Filters are the query parameters certificate, kind,
// actor (exact, or a prefix ending in ':' such as "token:"), since and until
// (RFC 3339, a date, or an age such as 24h or 7d), before_id and limit
// (1 to MaxPageSize, default DefaultPageSize).
func (s *Server) audit(w http.ResponseWriter, r *http.Request, p principal) {
	f, prob := s.eventFilter(r.URL.Query())
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	evs, err := s.Store.Events(r.Context(), f)
	if err != nil {
		if certfleet.ErrorCode(err) == certfleet.EINVALID {
			s.fail(w, r, false, problemFor(err))
			return
		}
		s.internal(w, r, "audit trail", err)
		return
	}
	for i := range evs {
		evs[i].Serial = certfleet.FormatSerial(evs[i].Serial) // as openssl prints it (issue 15)
	}
	page := AuditPage{Events: evs}
	if len(evs) == f.Limit {
		page.Next = "/v1/audit?" + eventQuery(f, evs[len(evs)-1].ID).Encode()
	}
	writeReply(w, r, jsonReply(http.StatusOK, page))
}

// eventFilter reads GET /v1/audit's query. Each bad parameter is a 400
// that names it.
func (s *Server) eventFilter(q url.Values) (certfleet.EventFilter, *Problem) {
	for k := range q {
		switch k {
		case "certificate", "kind", "actor", "since", "until", "before_id", "limit":
		default:
			return certfleet.EventFilter{}, problemf(certfleet.EINVALID, "unknown parameter %q (use certificate, kind, actor, since, until, before_id, limit)", k)
		}
	}
	f := certfleet.EventFilter{Certificate: q.Get("certificate"), Kind: q.Get("kind"), Actor: q.Get("actor"), Limit: DefaultPageSize}
	if f.Kind != "" {
		if err := certfleet.ValidateEventKind(f.Kind); err != nil {
			return f, problemf(certfleet.EINVALID, "kind: %v", err)
		}
	}
	if f.Actor != "" && !strings.Contains(f.Actor, ":") {
		return f, problemf(certfleet.EINVALID, "actor=%q: give TYPE:NAME (token:tok_…, cli:root, agent:lb1) or a prefix such as token:", f.Actor)
	}
	now := s.Now()
	for _, tv := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(tv.name); v != "" {
			t, err := certfleet.ParseEventTime(v, now)
			if err != nil {
				return f, problemf(certfleet.EINVALID, "%s: %v", tv.name, err)
			}
			*tv.dst = t
		}
	}
	if v := q.Get("before_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return f, problemf(certfleet.EINVALID, "before_id=%q: give the id of the last event of the previous page", v)
		}
		f.BeforeID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return f, problemf(certfleet.EINVALID, "limit=%q: give a number from 1 to %d", v, MaxPageSize)
		}
		f.Limit = n
	}
	if _, err := certfleet.CheckEventFilter(f); err != nil {
		return f, problemFor(err)
	}
	return f, nil
}

// eventQuery is the query of f for the page before beforeID, with times
// absolute (an age such as 24h would move between pages).
func eventQuery(f certfleet.EventFilter, beforeID int64) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"certificate": f.Certificate, "kind": f.Kind, "actor": f.Actor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if beforeID > 0 {
		q.Set("before_id", strconv.FormatInt(beforeID, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// Audit returns a page of the audit trail (GET /v1/audit; admin tokens
// only): f's zero fields match everything, f.Limit 0 is the server's
// default page size, f.BeforeID pages.
func (c *Client) Audit(ctx context.Context, f certfleet.EventFilter) (AuditPage, error) {
	var page AuditPage
	_, data, err := c.do(ctx, http.MethodGet, "/v1/audit", eventQuery(f, f.BeforeID), nil, nil)
	if err != nil {
		return page, err
	}
	if err := json.Unmarshal(data, &page); err != nil {
		return page, fmt.Errorf("certfleet API: /v1/audit: decode: %w", err)
	}
	return page, nil
}

// emit records e as done from the request's address, by p's token unless
// e names its actor. An event that cannot be recorded is logged: the change
// it describes is made.
func (s *Server) emit(r *http.Request, p principal, e certfleet.Event) {
	if s.Events == nil {
		return
	}
	s.record(r, s.Events, s.requestEvent(r, p, e))
}

// requestEvent completes e as emit records it: actor, time and remote.
func (s *Server) requestEvent(r *http.Request, p principal, e certfleet.Event) certfleet.Event {
	if e.Actor == "" {
		e.Actor = certfleet.ActorOf(p.token.ID)
	}
	e.At, e.Remote = s.Now(), r.RemoteAddr
	return e
}

// record hands a completed event to sink, logging a failure.
func (s *Server) record(r *http.Request, sink certfleet.EventSink, e certfleet.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := sink.RecordEvent(ctx, e); err != nil {
		s.Logger.Error("record audit event", "event", e, certfleet.LogError, err)
	}
}

// agentEvent is the audit event of an agent's report, if it is worth one:
// deployed when the agent installed another certificate than it last
// reported (or installed it again), deploy_failed when the report carries
// an error or failed commands that differ from the last report's. A
// check-in that repeats the last report records nothing, so the trail does
// not fill with an agent's heartbeat or a failure repeated every resync.
func agentEvent(prev *certfleet.AgentReport, rep certfleet.AgentReport) (certfleet.Event, bool) {
	installed := rep.Fingerprint != "" && (prev == nil || prev.Fingerprint != rep.Fingerprint || !prev.InstalledAt.Equal(rep.InstalledAt))
	failure := reportFailure(rep)
	newFailure := failure != "" && (prev == nil || reportFailure(*prev) != failure || installed)
	if !installed && !newFailure {
		return certfleet.Event{}, false
	}
	e := certfleet.Event{Kind: certfleet.EventDeployed, Certificate: rep.Certificate, KeyType: rep.KeyType, Serial: rep.Serial}
	var detail []string
	if rep.Serial != "" {
		detail = append(detail, fmt.Sprintf("installed serial %s (not after %s) at %s", certfleet.FormatSerial(rep.Serial),
			rep.NotAfter.UTC().Format(time.RFC3339), rep.InstalledAt.UTC().Format(time.RFC3339)))
	} else {
		detail = append(detail, "nothing installed")
	}
	detail = append(detail, "reported with token "+rep.TokenID)
	if failure != "" {
		e.Kind, e.Reason = certfleet.EventDeployFailed, "agent_error"
		if rep.Error == "" {
			e.Reason = "command_failed"
		}
		detail = append(detail, failure)
	}
	e.Detail = strings.Join(detail, "; ")
	return e, true
}

// reportFailure is what went wrong in a report: its error and the failed
// commands, "" when all is well.
func reportFailure(rep certfleet.AgentReport) string {
	var parts []string
	if rep.Error != "" {
		parts = append(parts, "error: "+rep.Error)
	}
	for _, c := range rep.Commands {
		if c.ExitCode != 0 || c.Error != "" {
			parts = append(parts, fmt.Sprintf("command %q exited %d: %s", strings.Join(c.Argv, " "), c.ExitCode, c.Error))
		}
	}
	return strings.Join(parts, "; ")
}

// previousReport is the stored report of the same agent, certificate and
// key type, nil for none.
func previousReport(ctx context.Context, fs certfleet.FleetStore, rep certfleet.AgentReport) (*certfleet.AgentReport, error) {
	reps, err := fs.AgentReports(ctx, certfleet.AgentReportFilter{Agent: rep.Agent, Certificate: rep.Certificate})
	if err != nil {
		return nil, err
	}
	for _, r := range reps {
		if r.KeyType == rep.KeyType {
			return &r, nil
		}
	}
	return nil, nil
}

// specEvent is the audit event of a PUT or CSR that changed spec name.
func specEvent(name string, id certfleet.Identifier, want certfleet.CertificateSpec, csr bool) certfleet.Event {
	e := certfleet.Event{Kind: certfleet.EventSpecChanged, Certificate: name, Reason: "requested"}
	kts := make([]string, len(want.KeyTypes))
	for i, k := range want.KeyTypes {
		kts[i] = string(k)
	}
	e.Detail = fmt.Sprintf("PUT %s: key types %s, challenge %s, account %s", id.Value, strings.Join(kts, ","), want.Challenge, want.AccountName())
	if len(want.Identifiers) > 1 {
		e.Detail += "; names " + strings.Join(certfleet.IdentifierValues(want.Identifiers), ", ")
	}
	if want.Profile != "" {
		e.Detail += "; profile " + want.Profile
	}
	if want.Tenant != "" {
		e.Detail += "; tenant " + want.Tenant
	}
	if csr {
		e.Reason = "csr"
		e.Detail = fmt.Sprintf("CSR for %s: names %s, key type %s (the key stays on the host)", id.Value,
			strings.Join(certfleet.IdentifierValues(want.Identifiers), ", "), strings.Join(kts, ","))
	}
	return e
}
