package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// NameStatus is the answer of GET /v1/names/{hostname}/status (and of PUT,
// retry).
type NameStatus struct {
	Name string `json:"name"`
	// Certificate is the spec serving the name; Identifiers all its names.
	Certificate string   `json:"certificate"`
	Source      string   `json:"source"`
	Identifiers []string `json:"identifiers"`
	// Mode is "key" (certfleet holds the key) or "csr" (the host does).
	Mode string `json:"mode"`
	// RenewBefore and RenewAfter are the certificate's renewal margins
	// as set (certfleet.FormatDuration: "30d", "12h0m0s"); absent when
	// not set.
	RenewBefore string `json:"renew_before,omitempty"`
	RenewAfter  string `json:"renew_after,omitempty"`
	// Issued is true when every key type has a certificate.
	Issued bool        `json:"issued"`
	Keys   []KeyStatus `json:"keys"`
	// StatusURL is this document; RetryURL makes the work due now (POST).
	StatusURL string `json:"status_url"`
	RetryURL  string `json:"retry_url"`
	// Fleet lists the agents that reported their copy of the certificate
	// (POST /v1/agents/{agent}/report): which version each has, when it
	// last checked in, and its command results.
	Fleet []FleetEntry `json:"fleet,omitempty"`
	// Waiting is set while the name waits for its self-test to pass
	// (issue 14, docs/readiness.md): no order is placed for it, and its
	// certificate is issued without it, until a re-test passes. A retry
	// (RetryURL) re-tests it at once.
	Waiting *WaitingStatus `json:"waiting,omitempty"`
	// Retry is what a retry did, per key type (the answer of POST
	// …/retry only).
	Retry []RetryAction `json:"retry,omitempty"`
}

// RetryAction is what a retry did to one key type's certificate (issue
// 15, finding 6): Action is RetryOrdering, RetryForced, RetryRetest or
// RetryNotDue, Reason says why in words; for a certificate that is not
// due, ValidUntil is its expiry and RenewalAt when it is renewed.
type RetryAction struct {
	KeyType    certfleet.KeyType `json:"key_type"`
	Action     string            `json:"action"`
	Reason     string            `json:"reason"`
	ValidUntil time.Time         `json:"valid_until,omitzero"`
	RenewalAt  time.Time         `json:"renewal_at,omitzero"`
}

// WaitingStatus is why a name waits and when it is tested again.
type WaitingStatus struct {
	// Reason is the kind (dns, http, tls_alpn, dns01, dns_persist,
	// probe); Detail says in words what was found and what to fix.
	Reason    string                  `json:"reason"`
	Detail    string                  `json:"detail"`
	Challenge certfleet.ChallengeType `json:"challenge"`
	Since     time.Time               `json:"since"`
	CheckedAt time.Time               `json:"checked_at"`
	NextTest  time.Time               `json:"next_test"`
	Tests     int                     `json:"tests"`
}

// KeyStatus is the state of one key type's certificate.
type KeyStatus struct {
	KeyType  certfleet.KeyType `json:"key_type"`
	Serial   string            `json:"serial,omitempty"`
	NotAfter time.Time         `json:"not_after,omitzero"`
	// NextCheck is when the scheduler next looks at it (renewal, retry).
	NextCheck time.Time `json:"next_check,omitzero"`
	// Pending is true while an order is in flight.
	Pending     bool      `json:"pending"`
	Failures    int       `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Deferred is why the next order waits for a rate-limit budget (or
	// the CA's Retry-After), and DeferredUntil when it becomes possible:
	// set while the newest attempt is a deferral still in force.
	Deferred      string    `json:"deferred,omitempty"`
	DeferredUntil time.Time `json:"deferred_until,omitzero"`
	// NotWritten is true while the current certificate is issued but its
	// files (output_dir, copies, commands) could not be written:
	// DeployError says why, DeployNextAt when they are tried again,
	// DeployFailures how many tries in a row failed, DeployFailedAt when
	// the newest did (certfleet.DeployState).
	NotWritten     bool          `json:"not_written"`
	DeployError    string        `json:"deploy_error,omitempty"`
	DeployFailures int           `json:"deploy_failures,omitempty"`
	DeployFailedAt time.Time     `json:"deploy_failed_at,omitzero"`
	DeployNextAt   time.Time     `json:"deploy_next_at,omitzero"`
	Attempts       []AttemptInfo `json:"recent_attempts,omitempty"`
}

// AttemptInfo is one recent attempt, with the CA's problem type.
type AttemptInfo struct {
	StartedAt   time.Time `json:"started_at"`
	Outcome     string    `json:"outcome"`
	Error       string    `json:"error,omitempty"`
	ProblemType string    `json:"problem_type,omitempty"`
	OrderURL    string    `json:"order_url,omitempty"`
	// Cause is Error taken apart (issue 15, finding 3): the ACME problem
	// type, the detail without the URLs that wrap it, the name, what to
	// do, and the URL on its own; nil for an attempt without an error.
	Cause *certfleet.FailureCause `json:"cause,omitempty"`
}

func statusURL(name string) string { return "/v1/names/" + url.PathEscape(name) + "/status" }

// nameStatus reads the status of spec specName as seen for name.
func (s *Server) nameStatus(ctx context.Context, name, specName string) (NameStatus, error) {
	sp, err := s.Store.Spec(ctx, specName)
	if err != nil {
		return NameStatus{}, err
	}
	return s.specStatus(ctx, name, sp)
}

// statusReads are the reads of a status that do not depend on each other,
// made at once (a PUT answers with its status: on PostgreSQL each read is a
// round trip).
type statusReads struct {
	waiting []certfleet.WaitingName
	jobs    []certfleet.Job
	atts    [][]certfleet.Attempt
	reports []certfleet.AgentReport
	fleet   bool // the store keeps agent reports
}

func (s *Server) readStatus(ctx context.Context, sp certfleet.CertificateSpec) (statusReads, error) {
	keys := sp.JobKeys()
	rd := statusReads{jobs: make([]certfleet.Job, len(keys)), atts: make([][]certfleet.Attempt, len(keys))}
	errs := make([]error, 2+2*len(keys))
	var wg sync.WaitGroup
	wg.Go(func() { rd.waiting, errs[0] = s.Store.WaitingNames(ctx, certfleet.WaitingFilter{Spec: sp.Name}) })
	if fs, ok := s.Store.(certfleet.FleetStore); ok {
		rd.fleet = true
		wg.Go(func() { rd.reports, errs[1] = fs.AgentReports(ctx, certfleet.AgentReportFilter{Certificate: sp.Name}) })
	}
	for i, k := range keys {
		wg.Go(func() { rd.jobs[i], errs[2+2*i] = s.Store.Job(ctx, k) })
		wg.Go(func() { rd.atts[i], errs[3+2*i] = s.Store.Attempts(ctx, k, 5) })
	}
	wg.Wait()
	return rd, errors.Join(errs...)
}

// createdReads are the reads of a status of a certificate created at
// createdAt (certfleet.SpecPutResult.CreatedAt), known without reading
// them: new jobs, due at once, and nothing else.
func (s *Server) createdReads(sp certfleet.CertificateSpec, createdAt time.Time) statusReads {
	keys := sp.JobKeys()
	rd := statusReads{jobs: make([]certfleet.Job, len(keys)), atts: make([][]certfleet.Attempt, len(keys))}
	_, rd.fleet = s.Store.(certfleet.FleetStore)
	for i, k := range keys {
		rd.jobs[i] = certfleet.Job{JobKey: k, NextAt: createdAt}
	}
	return rd
}

// specStatus is the status of sp as seen for name.
func (s *Server) specStatus(ctx context.Context, name string, sp certfleet.CertificateSpec) (NameStatus, error) {
	rd, err := s.readStatus(ctx, sp)
	if err != nil {
		return NameStatus{}, err
	}
	return s.statusFrom(ctx, name, sp, rd)
}

// statusFrom is the status of sp as seen for name, from its reads.
func (s *Server) statusFrom(ctx context.Context, name string, sp certfleet.CertificateSpec, rd statusReads) (NameStatus, error) {
	st := NameStatus{
		Name: name, Certificate: sp.Name, Source: sp.Source, Identifiers: certfleet.IdentifierValues(sp.Identifiers),
		Mode: "key", Issued: true, StatusURL: statusURL(name),
		RetryURL:    "/v1/names/" + url.PathEscape(name) + "/retry",
		RenewBefore: margin(sp.RenewBefore), RenewAfter: margin(sp.RenewAfter),
	}
	if len(sp.CSR) > 0 {
		st.Mode = "csr"
	}
	// Names that wait for their self-test are left out of the order: the
	// certificate is current when it matches the spec without them, as the
	// scheduler sees it (manager/selftest.go).
	waiting := rd.waiting
	ordered := sp
	if len(waiting) > 0 {
		held := map[certfleet.Identifier]bool{}
		for _, w := range waiting {
			held[w.Identifier] = true
			if strings.EqualFold(w.Identifier.Value, name) {
				st.Waiting = &WaitingStatus{Reason: w.Code, Detail: w.Reason, Challenge: w.Challenge, Since: w.Since,
					CheckedAt: w.CheckedAt, NextTest: w.NextAt, Tests: w.Tests}
			}
		}
		ordered.Identifiers = slices.DeleteFunc(slices.Clone(sp.Identifiers), func(id certfleet.Identifier) bool { return held[id] })
	}
	current := make(map[certfleet.KeyType]string)
	for i, k := range sp.JobKeys() {
		job := rd.jobs[i]
		ks := KeyStatus{KeyType: k.KeyType, NextCheck: job.NextAt, Pending: job.PendingOrderURL != "",
			Failures: job.Failures, LastError: job.LastError, LastErrorAt: job.LastErrorAt,
			NotWritten: job.Deploy.NotWritten(), DeployError: job.Deploy.Error, DeployFailures: job.Deploy.Failures,
			DeployFailedAt: job.Deploy.FailedAt, DeployNextAt: job.Deploy.NextAt}
		if job.CurrentID != 0 && job.CurrentRevision == ordered.Revision(k.KeyType) && st.Waiting == nil {
			iss, err := s.issuance(ctx, job.CurrentID)
			if err != nil {
				return st, err
			}
			ks.Serial, ks.NotAfter = certfleet.FormatSerial(iss.Serial), iss.NotAfter
			current[k.KeyType] = iss.Fingerprint
		} else {
			st.Issued = false
		}
		atts := rd.atts[i]
		for _, a := range atts {
			ai := AttemptInfo{StartedAt: a.StartedAt, Outcome: a.Outcome, Error: a.Error, ProblemType: a.ProblemType, OrderURL: a.OrderURL}
			if a.Error != "" {
				c := certfleet.ExplainFailure(a.Error, a.ProblemType)
				if c.URL == "" {
					c.URL = a.OrderURL
				}
				ai.Cause = &c
			}
			ks.Attempts = append(ks.Attempts, ai)
		}
		if len(atts) > 0 && atts[0].Outcome == certfleet.OutcomeDeferred && job.NextAt.After(s.Now()) {
			ks.Deferred, ks.DeferredUntil = atts[0].Error, job.NextAt
			// Waiting in a budget's queue: its place as it is now.
			waits, err := s.Store.BudgetWaits(ctx, certfleet.BudgetWaitFilter{Spec: k.Spec, KeyType: k.KeyType})
			if err != nil {
				return st, err
			}
			if len(waits) > 0 {
				ks.Deferred = waits[0].String()
			}
		}
		st.Keys = append(st.Keys, ks)
	}
	if rd.fleet {
		st.Fleet = fleetEntries(rd.reports, current)
	}
	return st, nil
}

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Name}} — certfleet</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}td,th{padding:.2em .8em;text-align:left}.err{color:#a00}</style></head>
<body><h1>{{.Name}}</h1>
<p>Certificate <b>{{.Certificate}}</b> ({{.Source}}, {{.Mode}} mode): {{range $i, $n := .Identifiers}}{{if $i}}, {{end}}{{$n}}{{end}}</p>
<table><tr><th>key</th><th>serial</th><th>not after</th><th>next check</th><th>failures</th><th>last error</th></tr>
{{range .Keys}}<tr><td>{{.KeyType}}</td><td>{{.Serial}}</td><td>{{if not .NotAfter.IsZero}}{{.NotAfter.UTC.Format "2006-01-02 15:04:05Z"}}{{else}}not issued{{end}}</td>
<td>{{.NextCheck.UTC.Format "2006-01-02 15:04:05Z"}}</td><td>{{.Failures}}</td><td class="err">{{if .Deferred}}{{.Deferred}}{{else}}{{.LastError}}{{end}}</td></tr>
{{end}}</table>
{{if .Fleet}}<h2>Fleet</h2>
<table><tr><th>agent</th><th>key</th><th>serial</th><th>version</th><th>installed</th><th>last seen</th><th>error</th></tr>
{{range .Fleet}}<tr><td>{{.Agent}}</td><td>{{.KeyType}}</td><td>{{.Serial}}</td><td>{{if .Current}}current{{else}}<b class="err">OLD</b>{{end}}</td>
<td>{{if not .InstalledAt.IsZero}}{{.InstalledAt.UTC.Format "2006-01-02 15:04:05Z"}}{{else}}-{{end}}</td><td>{{.LastSeen.UTC.Format "2006-01-02 15:04:05Z"}}</td><td class="err">{{.Error}}</td></tr>
{{end}}</table>{{end}}
<form method="post" action="{{.RetryURL}}"><p>Retry now: <code>curl -X POST -H "Authorization: Bearer $TOKEN" …{{.RetryURL}}</code></p></form>
</body></html>
`))

func (s *Server) status(w http.ResponseWriter, r *http.Request, p principal) {
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	html := wantsHTML(r)
	s.longPoll(w, r, func(ctx context.Context) reply {
		sp, prob, err := s.readable(ctx, p, id.Value, s.specFor)
		if err != nil {
			return s.errReply(r, "status", err)
		}
		if prob != nil {
			return s.problemReply(r, prob)
		}
		if sp == nil {
			return s.notFound(r, "%q is not managed; request it with PUT /v1/names/%s", id.Value, id.Value)
		}
		st, err := s.nameStatus(ctx, id.Value, sp.Name)
		if err != nil {
			return s.errReply(r, "status", err)
		}
		rep := jsonReply(http.StatusOK, st)
		if html {
			var b strings.Builder
			if err := statusPage.Execute(&b, st); err != nil {
				return s.errReply(r, "status page", err)
			}
			rep.ctype, rep.body = "text/html; charset=utf-8", []byte(b.String())
			rep.etag = strings.TrimSuffix(rep.etag, `"`) + `-html"`
		}
		return rep
	})
}

// wantsHTML reports whether the client prefers text/html to JSON (a
// browser).
func wantsHTML(r *http.Request) bool {
	acc := r.Header.Get("Accept")
	return strings.Contains(acc, "text/html") && !strings.Contains(acc, "application/json")
}

func (s *Server) errReply(r *http.Request, what string, err error) reply {
	if certfleet.ErrorCode(err) == certfleet.EINTERNAL {
		s.Logger.Error(what, "path", safePath(r), certfleet.LogError, err)
	}
	p := problemFor(err)
	if !strings.HasPrefix(r.URL.Path, "/u/") {
		p.Instance = r.URL.Path
	}
	return problemReply(p)
}

// problemReply is the reply of prob to r.
func (s *Server) problemReply(r *http.Request, prob *Problem) reply {
	if !strings.HasPrefix(r.URL.Path, "/u/") {
		prob.Instance = r.URL.Path
	}
	return problemReply(prob)
}

func (s *Server) notFound(r *http.Request, format string, args ...any) reply {
	return s.errReply(r, "", errorf(certfleet.ENOTFOUND, format, args...))
}

// CertificateInfo is one certificate (spec) in GET /v1/certificates.
type CertificateInfo struct {
	Name        string              `json:"name"`
	Source      string              `json:"source"`
	Identifiers []string            `json:"identifiers"`
	KeyTypes    []certfleet.KeyType `json:"key_types"`
	Mode        string              `json:"mode"`
	// RenewBefore and RenewAfter: as in NameStatus.
	RenewBefore string      `json:"renew_before,omitempty"`
	RenewAfter  string      `json:"renew_after,omitempty"`
	Keys        []KeyStatus `json:"keys"`
}

// margin formats a renewal margin of a spec for a document: "" when not
// set.
func margin(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return certfleet.FormatDuration(d)
}

// CertificateList is a page of certificates; Next, when set, is the URL
// of the next page.
type CertificateList struct {
	Certificates []CertificateInfo `json:"certificates"`
	Next         string            `json:"next,omitempty"`
}

func (s *Server) certificateInfo(ctx context.Context, sp certfleet.CertificateSpec) (CertificateInfo, error) {
	info := CertificateInfo{Name: sp.Name, Source: sp.Source, Identifiers: certfleet.IdentifierValues(sp.Identifiers), KeyTypes: sp.KeyTypes, Mode: "key",
		RenewBefore: margin(sp.RenewBefore), RenewAfter: margin(sp.RenewAfter)}
	if len(sp.CSR) > 0 {
		info.Mode = "csr"
	}
	st, err := s.nameStatus(ctx, sp.Identifiers[0].Value, sp.Name)
	if err != nil {
		return info, err
	}
	for _, k := range st.Keys {
		k.Attempts = nil
		info.Keys = append(info.Keys, k)
	}
	return info, nil
}

func (s *Server) getCertificateSpec(w http.ResponseWriter, r *http.Request, p principal) {
	name := r.PathValue("id")
	s.longPoll(w, r, func(ctx context.Context) reply {
		sp, err := s.Store.Spec(ctx, name)
		// Out of scope answers as "not found": a certificate's names are
		// only known after the lookup, and a 403 would confirm it exists.
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND || (err == nil && (sp.Disabled || !p.token.MayRead(sp))) {
			return s.notFound(r, "certificate %q not found (or not within this token's names)", name)
		} else if err != nil {
			return s.errReply(r, "certificate", err)
		}
		info, err := s.certificateInfo(ctx, sp)
		if err != nil {
			return s.errReply(r, "certificate", err)
		}
		return jsonReply(http.StatusOK, info)
	})
}

var _ = json.Marshal
