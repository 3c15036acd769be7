package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestEventQueryPlans checks that every filter shape certfleet audit and
// GET /v1/audit send is answered from an index in listing order: no full
// table scan and no sort of the matching rows, so a page costs the same
// with a thousand events or millions (BenchmarkEvents measures it).
func TestEventQueryPlans(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 50 {
		e := certfleet.Event{At: base.Add(time.Duration(i) * time.Minute), Kind: certfleet.EventKeyRead, Actor: "token:tok_1", Certificate: "web"}
		if err := s.RecordEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	since, until := base.Add(10*time.Minute), base.Add(20*time.Minute)
	for _, tc := range []struct {
		name  string
		f     certfleet.EventFilter
		index string
	}{
		{"none", certfleet.EventFilter{}, "audit_events_at"},
		{"since", certfleet.EventFilter{Since: since}, "audit_events_at"},
		{"range", certfleet.EventFilter{Since: since, Until: until}, "audit_events_at"},
		{"page", certfleet.EventFilter{BeforeID: 20}, "audit_events_at"},
		{"certificate", certfleet.EventFilter{Certificate: "web"}, "audit_events_certificate"},
		{"certificate range page", certfleet.EventFilter{Certificate: "web", Since: since, Until: until, BeforeID: 15}, "audit_events_certificate"},
		{"kind", certfleet.EventFilter{Kind: certfleet.EventKeyRead}, "audit_events_kind"},
		{"kind since", certfleet.EventFilter{Kind: certfleet.EventKeyRead, Since: since}, "audit_events_kind"},
		{"actor", certfleet.EventFilter{Actor: "token:tok_1"}, "audit_events_actor"},
		{"actor prefix", certfleet.EventFilter{Actor: "token:"}, "audit_events_actor_type"},
		{"actor prefix until", certfleet.EventFilter{Actor: "token:", Until: until}, "audit_events_actor_type"},
		{"certificate and kind", certfleet.EventFilter{Certificate: "web", Kind: certfleet.EventKeyRead}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := certfleet.CheckEventFilter(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := s.db.r.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			q, args, err := eventQuery(t.Context(), conn, f)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := conn.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			all := strings.Join(plan, "; ")
			t.Logf("%s", all)
			// The cursor lookup (by primary key) is a separate statement.
			if strings.Contains(all, "TEMP B-TREE") || !strings.Contains(all, "USING INDEX") && !strings.Contains(all, "USING COVERING INDEX") {
				t.Errorf("plan for %+v: %s; want an index in (at, id) order and no sort", tc.f, all)
			}
			if tc.index != "" && !strings.Contains(all, tc.index+" ") && !strings.HasSuffix(all, tc.index) && !strings.Contains(all, tc.index+")") {
				t.Errorf("plan for %+v: %s; want index %s", tc.f, all, tc.index)
			}
		})
	}
}
