package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// The timeline: the next N days as a picture, one lane per certificate
// (spec and key type) that has one: how long it stays valid, where it
// enters the alerts' warning and critical windows, when it expires, and
// when it is next renewed (or retried, for a failing one, or ordered, for
// one waiting for a rate-limit budget). Server-rendered SVG with classes
// from the style sheet: no script, no new dependency, nothing the page's
// Content-Security-Policy would block.
const (
	// DefaultTimelineDays is the window shown without ?days=.
	DefaultTimelineDays = 30
	// timelineScan bounds the lanes read per page for a token that sees
	// only some certificates (the rest are skipped after reading).
	timelineScan = 2000
	// Geometry of the SVG, in its own units (it scales to the page).
	tlWidth   = 1200
	tlLabel   = 250 // the names' column
	tlRight   = 110 // room for "expires in 63d →"
	tlLane    = 24
	tlTop     = 34 // the day axis
	tlBarH    = 10
	tlMarkerR = 5
)

// Lane, BarH and MarkerR are the SVG's constants, for the template.
func (v *timelineView) Lane() int    { return tlLane }
func (v *timelineView) BarH() int    { return tlBarH }
func (v *timelineView) MarkerR() int { return tlMarkerR }

// timelineDays are the windows offered.
var timelineDays = []int{7, 14, 30, 60, 90}

// statsReader is what a store that answers metrics scrapes has
// (certfleet.StatsStore): current certificates a page at a time.
type statsReader interface {
	CurrentCertificates(ctx context.Context, f certfleet.CurrentFilter) ([]certfleet.CurrentCertificate, error)
}

// timelineView is the timeline page.
type timelineView struct {
	Days       int
	DayChoices []int
	// Soon: only certificates that expire within the window.
	Soon  bool
	Lanes []lane
	Ticks []tick
	// Geometry for the template.
	Width, Height, X0, X1 int
	NowX                  int
	NextURL, SoonURL      string
	AllURL                string
	Unsupported           bool
	// Failing and Waiting count the lanes marked so.
	Failing, Waiting, Expiring int
}

type tick struct {
	X     int
	Label string
	Major bool
}

// lane is one certificate's row.
type lane struct {
	Cert, KeyType, Title string
	Y, BarY, MidY        int
	TickTop, TickBottom  int // the expiry tick spans the lane
	// Segments of the validity bar: ok, then warning, then critical.
	Segs []seg
	// Renewal marker: at RenewX, class "renew", "retry" (failing: the
	// next try) or "wait" (waiting for a budget); RenewOut when beyond
	// the window.
	RenewX     int
	RenewClass string
	RenewOut   bool
	RenewText  string
	// Expiry: ExpX when within the window, else ExpLabel at the right.
	ExpX       int
	ExpIn      bool
	ExpLabel   string
	Failing    bool
	NotWritten bool // issued, not written (failing too)
	Waiting    bool
	Expiring   bool
	URL        string
}

type seg struct {
	X, Y, W int
	Class   string
}

func (s *Server) timelineURL(days int, soon bool, after string) string {
	v := url.Values{}
	if days != DefaultTimelineDays {
		v.Set("days", strconv.Itoa(days))
	}
	if soon {
		v.Set("soon", "1")
	}
	if after != "" {
		v.Set("after", after)
	}
	if len(v) == 0 {
		return s.Prefix + "/timeline"
	}
	return s.Prefix + "/timeline?" + v.Encode()
}

// timeline draws the page of lanes after ?after= (spec/key type, in name
// order, read from the store a page at a time), for ?days= days.
func (s *Server) timeline(w http.ResponseWriter, r *http.Request, u *user) {
	ctx := r.Context()
	now := s.Now()
	q := r.URL.Query()
	v := &timelineView{Days: DefaultTimelineDays, DayChoices: timelineDays, Soon: q.Get("soon") == "1"}
	if n, err := strconv.Atoi(q.Get("days")); err == nil && n >= 1 && n <= 366 {
		v.Days = n
	}
	v.AllURL, v.SoonURL = s.timelineURL(v.Days, false, ""), s.timelineURL(v.Days, true, "")
	sr, ok := s.Store.(statsReader)
	if !ok {
		v.Unsupported = true
		s.render(w, r, http.StatusOK, "timeline", page{Title: "Timeline", User: u, Timeline: v})
		return
	}
	end := now.Add(time.Duration(v.Days) * 24 * time.Hour)
	f := certfleet.CurrentFilter{Limit: min(s.PageSize*4, 500)}
	if v.Soon {
		f.NotAfterBefore = end
	}
	if a := q.Get("after"); a != "" {
		spec, kt, _ := strings.Cut(a, "/")
		f.After = certfleet.JobKey{Spec: spec, KeyType: certfleet.KeyType(kt)}
	}
	sc := s.scopeOf(u)
	var rows []certfleet.CurrentCertificate
	var last certfleet.JobKey
	more, scanned := false, 0
scan:
	for {
		if scanned >= timelineScan {
			more = true // the scan's bound: the next page goes on from here
			break
		}
		page, err := sr.CurrentCertificates(ctx, f)
		if err != nil {
			s.storeError(w, r, u, "list certificates for the timeline", err)
			return
		}
		for _, c := range page {
			scanned++
			last = certfleet.JobKey{Spec: c.Spec, KeyType: c.KeyType}
			ok, err := sc.mayCert(ctx, c.Spec)
			if err != nil {
				s.storeError(w, r, u, "read certificate "+c.Spec, err)
				return
			}
			if ok {
				rows = append(rows, c)
				if len(rows) == s.PageSize {
					more = true
					break scan
				}
			}
		}
		if len(page) < f.Limit {
			break
		}
		f.After = last
	}
	if more && last.Spec != "" {
		v.NextURL = s.timelineURL(v.Days, v.Soon, last.String())
	}
	if err := s.layoutTimeline(ctx, v, rows, now, end); err != nil {
		s.storeError(w, r, u, "read attempts for the timeline", err)
		return
	}
	s.render(w, r, http.StatusOK, "timeline", page{Title: "Timeline", User: u, Timeline: v})
}

// layoutTimeline computes the SVG's geometry.
func (s *Server) layoutTimeline(ctx context.Context, v *timelineView, rows []certfleet.CurrentCertificate, now, end time.Time) error {
	v.Width, v.X0, v.X1 = tlWidth, tlLabel, tlWidth-tlRight
	span := end.Sub(now)
	x := func(t time.Time) int {
		switch {
		case !t.After(now):
			return v.X0
		case !t.Before(end):
			return v.X1
		}
		return v.X0 + int(float64(v.X1-v.X0)*float64(t.Sub(now))/float64(span))
	}
	v.NowX = v.X0
	// Day ticks: every day up to 14 days, every week beyond.
	step := 1
	if v.Days > 14 {
		step = 7
	}
	day0 := now.UTC().Truncate(24 * time.Hour)
	for d := step; ; d += step {
		t := day0.Add(time.Duration(d) * 24 * time.Hour)
		if t.After(end) {
			break
		}
		v.Ticks = append(v.Ticks, tick{X: x(t), Label: t.Format("Jan 2"), Major: t.Weekday() == time.Monday || step > 1})
	}
	for i, c := range rows {
		key := certfleet.JobKey{Spec: c.Spec, KeyType: c.KeyType}
		y := tlTop + i*tlLane
		l := lane{Cert: c.Spec, KeyType: string(c.KeyType), Y: y, BarY: y + (tlLane-tlBarH)/2, MidY: y + tlLane/2, TickTop: y + 2, TickBottom: y + tlLane - 2,
			Failing: c.Failures > 0, URL: s.Prefix + "/cert/" + url.PathEscape(c.Spec)}
		life := c.Lifetime()
		warn := c.NotAfter.Add(-s.Thresholds.Warning(life))
		crit := c.NotAfter.Add(-s.Thresholds.Critical(life))
		for _, sg := range []struct {
			from, to time.Time
			class    string
		}{{now, warn, "tl-ok"}, {warn, crit, "tl-warning"}, {crit, c.NotAfter, "tl-critical"}} {
			from, to := maxTime(sg.from, now), minTime(sg.to, end)
			if to.After(from) {
				l.Segs = append(l.Segs, seg{X: x(from), Y: l.BarY, W: max(x(to)-x(from), 1), Class: sg.class})
			}
		}
		l.Expiring = !warn.After(now)
		l.ExpIn = !c.NotAfter.After(end)
		l.ExpX = x(c.NotAfter)
		if !l.ExpIn {
			l.ExpLabel = "expires in " + strconv.Itoa(int(c.NotAfter.Sub(now)/(24*time.Hour))) + "d →"
		}
		// Renewal: the job's next time; a failing job's is its next try,
		// a deferred one's the end of its wait.
		l.RenewClass, l.RenewText = "tl-renew", "renews "
		atts, err := s.Store.Attempts(ctx, key, 1)
		if err != nil {
			return err
		}
		var waiting []certfleet.WaitingName
		if ws, ok := s.Store.(waitingNames); ok {
			if waiting, err = ws.WaitingNames(ctx, certfleet.WaitingFilter{Spec: c.Spec, Limit: 1}); err != nil {
				return err
			}
		}
		switch {
		case c.Deploy.NotWritten():
			// Issued, not written: the files' next try is what comes next.
			l.Failing, l.NotWritten = true, true
			l.RenewClass, l.RenewText = "tl-retry", "issued, NOT WRITTEN ("+oneLine(c.Deploy.Error, 120)+"), next write "
		case c.Failures > 0:
			l.RenewClass, l.RenewText = "tl-retry", fmt.Sprintf("failing (%d in a row), next try ", c.Failures)
		case len(atts) > 0 && atts[0].Outcome == certfleet.OutcomeDeferred && c.NextAt.After(now):
			l.Waiting = true
			l.RenewClass, l.RenewText = "tl-wait", "waiting ("+oneLine(atts[0].Error, 120)+"), ordered "
		case len(waiting) > 0:
			// Names failing their self-test hold the order (issue 14).
			l.Waiting = true
			l.RenewClass, l.RenewText = "tl-wait", "names waiting for their self-test ("+waiting[0].Identifier.Value+": "+oneLine(waiting[0].Reason, 120)+"), next check "
		}
		next := c.NextAt
		if l.NotWritten && !c.Deploy.NextAt.IsZero() {
			next = c.Deploy.NextAt
		}
		l.RenewX, l.RenewOut = x(next), next.After(end)
		l.Title = fmt.Sprintf("%s (%s): valid until %s (%s); %s%s (%s)", c.Spec, c.KeyType, c.NotAfter.UTC().Format("2006-01-02 15:04 UTC"),
			relTime(now, c.NotAfter), l.RenewText, next.UTC().Format("2006-01-02 15:04 UTC"), relTime(now, next))
		if l.Failing {
			v.Failing++
		}
		if l.Waiting {
			v.Waiting++
		}
		if l.Expiring {
			v.Expiring++
		}
		v.Lanes = append(v.Lanes, l)
	}
	v.Height = tlTop + max(len(rows), 1)*tlLane + 8
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// oneLine keeps the first line of s, at most n bytes of it.
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
