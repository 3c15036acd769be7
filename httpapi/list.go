package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// maxScannedPages bounds the store pages one GET /v1/certificates reads
// for a token whose patterns cover only some of its tenant's certificates:
// a page may then come back short, with next set, instead of the request
// reading the whole store to fill it.
const maxScannedPages = 4

// listQuery parses the query of GET /v1/certificates: limit, after (the
// cursor: the name of the previous page's last certificate, as next
// gives it), and the filters q, source, failing and tenant (an operator's
// token only; a tenant's token always lists its own).
func listQuery(r *http.Request, p principal) (certfleet.CertificateQuery, *Problem) {
	v := r.URL.Query()
	cq := certfleet.CertificateQuery{Limit: DefaultPageSize, Tenant: p.token.Tenant}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return cq, problemf(certfleet.EINVALID, "limit=%q: give a number from 1 to %d", s, MaxPageSize)
		}
		cq.Limit = min(n, MaxPageSize)
	}
	if s := v.Get("after"); s != "" {
		if err := certfleet.ValidateName(s); err != nil {
			return cq, problemf(certfleet.EINVALID, "after=%q is not a cursor this API gives: it is the name of the last certificate of the previous page (%v); follow the page's next link", s, err)
		}
		cq.After = s
	}
	if s := v.Get("q"); s != "" {
		if len(s) > 253 || strings.ContainsAny(s, " \t\r\n") {
			return cq, problemf(certfleet.EINVALID, "q=%q: give a name, a domain its names are under (example.com), or whole labels (www, www.example) — at most 253 characters, no spaces", s)
		}
		cq.Search = certfleet.NormalizeSearch(s)
	}
	if s := v.Get("source"); s != "" {
		if err := certfleet.ValidateName(s); err != nil {
			return cq, problemf(certfleet.EINVALID, "source=%q: give a source's name (api, config, or an inventory source's): %v", s, err)
		}
		cq.Source = s
	}
	if s := v.Get("failing"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return cq, problemf(certfleet.EINVALID, "failing=%q: use true or false", s)
		}
		cq.Failing = b
	}
	if s := v.Get("tenant"); s != "" && s != p.token.Tenant {
		if p.token.Tenant != "" {
			return cq, problemf(codeForbidden, "tenant=%q: a tenant's token lists its own certificates only", s)
		}
		if err := certfleet.ValidateName(s); err != nil {
			return cq, problemf(certfleet.EINVALID, "tenant=%q: %v", s, err)
		}
		cq.Tenant = s
	}
	return cq, nil
}

// nextURL is the URL of the page after the certificate named last.
func nextURL(r *http.Request, last string) string {
	v := r.URL.Query()
	v.Del("wait")
	v.Set("after", last)
	return "/v1/certificates?" + v.Encode()
}

// listCertificates answers GET /v1/certificates: filtered and paged in
// the store (certfleet.NameIndex.CertificatePage), a page at a time by
// keyset cursor, whatever the number of certificates; each page is one
// statement (and one look at the attempts of the jobs that wait to order,
// listedInfos).
func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request, p principal) {
	cq, prob := listQuery(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	s.longPoll(w, r, func(ctx context.Context) reply {
		list := CertificateList{Certificates: []CertificateInfo{}}
		var shown []certfleet.CertificateListing
		q := cq
		done := false
	pages:
		for range maxScannedPages {
			page, err := s.Store.CertificatePage(ctx, q)
			if err != nil {
				return s.errReply(r, "list certificates", err)
			}
			for _, c := range page.Certificates {
				if !p.token.MayRead(c.Spec) {
					continue
				}
				if len(shown) == cq.Limit {
					// One more is readable: there is a next page.
					list.Next = nextURL(r, shown[len(shown)-1].Spec.Name)
					done = true
					break pages
				}
				shown = append(shown, c)
			}
			if page.Next == "" {
				done = true // the end
				break
			}
			q.After = page.Next
		}
		if !done {
			// Out of scanning budget (or full at a page's end): go on
			// after what was read. The next page may be empty.
			list.Next = nextURL(r, q.After)
		}
		infos, err := s.listedInfos(ctx, shown)
		if err != nil {
			return s.errReply(r, "list certificates", err)
		}
		list.Certificates = append(list.Certificates, infos...)
		if len(list.Certificates) > DefaultPageSize {
			return compactJSONReply(http.StatusOK, list)
		}
		return jsonReply(http.StatusOK, list)
	})
}

// listedInfos are the certificates of a page as GET /v1/certificates
// shows them. Only the jobs that wait to order (none of their spec's
// revision yet, next check ahead) have their latest attempt read, for the
// deferral, and their places in a rate-limit queue: for the whole page at
// once when the store can (certfleet.ListingExtras), so a page of 100
// waiting or failing certificates is two statements, not 200 (issue 13).
func (s *Server) listedInfos(ctx context.Context, shown []certfleet.CertificateListing) ([]CertificateInfo, error) {
	now := s.Now()
	var waiting []certfleet.JobKey
	for _, c := range shown {
		for _, j := range c.Jobs {
			if !listedCurrent(c.Spec, j) && j.NextAt.After(now) {
				waiting = append(waiting, j.Key(c.Spec.Name))
			}
		}
	}
	var extras certfleet.PageExtras
	if x, ok := s.Store.(certfleet.ListingExtras); ok && len(waiting) > 0 {
		var err error
		if extras, err = x.PageExtras(ctx, certfleet.PageExtrasQuery{Attempts: waiting, AttemptsPer: 1, Waits: waiting}); err != nil {
			return nil, err
		}
	} else if len(waiting) > 0 {
		// One read per waiting job, as a store without the batch allows.
		extras = certfleet.PageExtras{Attempts: map[certfleet.JobKey][]certfleet.Attempt{}, Waits: map[certfleet.JobKey][]certfleet.BudgetWait{}}
		for _, key := range waiting {
			atts, err := s.Store.Attempts(ctx, key, 1)
			if err != nil {
				return nil, err
			}
			extras.Attempts[key] = atts
			if len(atts) > 0 && atts[0].Outcome == certfleet.OutcomeDeferred {
				waits, err := s.Store.BudgetWaits(ctx, certfleet.BudgetWaitFilter{Spec: key.Spec, KeyType: key.KeyType})
				if err != nil {
					return nil, err
				}
				extras.Waits[key] = waits
			}
		}
	}
	out := make([]CertificateInfo, len(shown))
	for i, c := range shown {
		out[i] = listedInfo(now, c, extras)
	}
	return out, nil
}

// listedCurrent is whether j's current certificate is of its spec's
// revision.
func listedCurrent(sp certfleet.CertificateSpec, j certfleet.ListedJob) bool {
	return j.Current.IssuanceID != 0 && j.CurrentRevision == sp.Revision(j.KeyType)
}

// listedInfo is a certificate of a page as GET /v1/certificates shows it,
// with the latest attempts and waits of its jobs that wait to order.
func listedInfo(now time.Time, c certfleet.CertificateListing, extras certfleet.PageExtras) CertificateInfo {
	sp := c.Spec
	info := CertificateInfo{Name: sp.Name, Source: sp.Source, Identifiers: certfleet.IdentifierValues(sp.Identifiers), KeyTypes: sp.KeyTypes, Mode: "key",
		Keys: make([]KeyStatus, 0, len(c.Jobs))}
	if len(sp.CSR) > 0 {
		info.Mode = "csr"
	}
	for _, j := range c.Jobs {
		ks := KeyStatus{KeyType: j.KeyType, NextCheck: j.NextAt, Pending: j.Pending, Failures: j.Failures,
			LastError: j.LastError, LastErrorAt: j.LastErrorAt}
		current := listedCurrent(sp, j)
		if current {
			ks.Serial, ks.NotAfter = certfleet.FormatSerial(j.Current.Serial), j.Current.NotAfter
		}
		if !current && j.NextAt.After(now) {
			key := j.Key(sp.Name)
			if atts := extras.Attempts[key]; len(atts) > 0 && atts[0].Outcome == certfleet.OutcomeDeferred {
				ks.Deferred, ks.DeferredUntil = atts[0].Error, j.NextAt
				if waits := extras.Waits[key]; len(waits) > 0 {
					ks.Deferred = waits[0].String()
				}
			}
		}
		info.Keys = append(info.Keys, ks)
	}
	return info
}
