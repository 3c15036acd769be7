package storetest

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/certfleet/certfleet"
)

// AuditStore is a store with the audit trail and the key-read log.
type AuditStore interface {
	certfleet.Store
	certfleet.TokenStore
}

// RawExec runs one SQL statement on s's database directly, below the
// interface, and returns the database's error: RunAudit uses it to check
// that the database itself refuses to change the trail.
type RawExec func(t *testing.T, s AuditStore, statement string) error

// RunAudit runs the contract of certfleet.AuditStore: events round-trip
// with every field, list newest first, every filter and their combinations
// select what they say, paging by BeforeID visits each event once, bad
// events and filters are EINVALID, a long Detail is cut visibly at
// certfleet.MaxEventDetail and never beyond it, a key read is an event in
// the same write, and UPDATE and DELETE on the trail fail in the database.
func RunAudit(t *testing.T, newStore func(t *testing.T) AuditStore, raw RawExec) {
	t.Run("RoundTrip", func(t *testing.T) { testEventRoundTrip(t, newStore(t)) })
	t.Run("Filters", func(t *testing.T) { testEventFilters(t, newStore(t)) })
	t.Run("Paging", func(t *testing.T) { testEventPaging(t, newStore(t)) })
	t.Run("Invalid", func(t *testing.T) { testEventInvalid(t, newStore(t)) })
	t.Run("DetailCap", func(t *testing.T) { testEventDetailCap(t, newStore(t)) })
	t.Run("KeyRead", func(t *testing.T) { testKeyReadEvent(t, newStore(t)) })
	t.Run("AppendOnly", func(t *testing.T) { testEventAppendOnly(t, newStore(t), raw) })
}

// base is a fixed time in the past, in whole microseconds (what both
// stores keep).
var auditBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustRecord(t *testing.T, s AuditStore, e certfleet.Event) {
	t.Helper()
	if err := s.RecordEvent(t.Context(), e); err != nil {
		t.Fatalf("RecordEvent(%s %s): %v", e.Kind, e.Actor, err)
	}
}

func mustEvents(t *testing.T, s AuditStore, f certfleet.EventFilter) []certfleet.Event {
	t.Helper()
	evs, err := s.Events(t.Context(), f)
	if err != nil {
		t.Fatalf("Events(%+v): %v", f, err)
	}
	return evs
}

// details lists the events' Detail fields, which the tests use as labels.
func details(evs []certfleet.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Detail
	}
	return out
}

func testEventRoundTrip(t *testing.T, s AuditStore) {
	want := certfleet.Event{At: auditBase.Add(1234567 * time.Microsecond), Kind: certfleet.EventRenewed,
		Actor: "instance:host-1-abc", Remote: "192.0.2.7:51234", Certificate: "web", KeyType: certfleet.RSA2048,
		Serial: "04ab", IssuanceID: 42, Reason: "ari", Detail: "renewal window reached; replaces serial 03ff — ünïcode"}
	mustRecord(t, s, want)
	got := mustEvents(t, s, certfleet.EventFilter{})
	if len(got) != 1 {
		t.Fatalf("Events = %d events, want 1", len(got))
	}
	if got[0].ID <= 0 {
		t.Errorf("ID = %d, want > 0 (set by the store)", got[0].ID)
	}
	if got[0].At.Location() != time.UTC {
		t.Errorf("At in %v, want UTC", got[0].At.Location())
	}
	want.ID = got[0].ID
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got[0], want)
	}
	// An undated event gets the store's time; an ID given is ignored.
	before := time.Now()
	mustRecord(t, s, certfleet.Event{ID: 999999, Kind: certfleet.EventRetry, Actor: "cli:root"})
	got = mustEvents(t, s, certfleet.EventFilter{Kind: certfleet.EventRetry})
	if len(got) != 1 || got[0].ID == 999999 || got[0].At.Before(before.Add(-time.Second)) || got[0].At.After(time.Now().Add(time.Second)) {
		t.Errorf("undated event = %+v, want the store's ID and the current time", got)
	}
}

func testEventFilters(t *testing.T, s AuditStore) {
	at := func(min int) time.Time { return auditBase.Add(time.Duration(min) * time.Minute) }
	// Recorded out of time order on purpose: the listing is by At.
	for _, e := range []certfleet.Event{
		{At: at(3), Kind: certfleet.EventKeyRead, Actor: "token:tok_a", Certificate: "web", Detail: "3 web key_read tok_a"},
		{At: at(1), Kind: certfleet.EventIssued, Actor: "instance:i1", Certificate: "web", Detail: "1 web issued"},
		{At: at(2), Kind: certfleet.EventOrderFailed, Actor: "instance:i1", Certificate: "mail", Reason: "connection", Detail: "2 mail order_failed"},
		{At: at(5), Kind: certfleet.EventKeyRead, Actor: "token:tok_b", Certificate: "mail", Detail: "5 mail key_read tok_b"},
		{At: at(4), Kind: certfleet.EventTokenCreated, Actor: "cli:root", Detail: "4 token_created"},
		{At: at(6), Kind: certfleet.EventConfigChanged, Actor: "config:/etc/certfleet.toml", Certificate: "web", Detail: "6 web config_changed"},
		{At: at(7), Kind: certfleet.EventDeployed, Actor: "agent:lb1", Certificate: "web", Detail: "7 web deployed"},
		{At: at(8), Kind: certfleet.EventKeyRead, Actor: "tokenish:x", Certificate: "web", Detail: "8 web key_read tokenish"},
		{At: at(2), Kind: certfleet.EventRetry, Actor: "token:tok_a", Certificate: "web", Detail: "2b web retry tok_a"},
	} {
		mustRecord(t, s, e)
	}
	for _, tc := range []struct {
		name string
		f    certfleet.EventFilter
		want []string
	}{
		{"all, newest first (ties in At by ID)", certfleet.EventFilter{}, []string{
			"8 web key_read tokenish", "7 web deployed", "6 web config_changed", "5 mail key_read tok_b", "4 token_created",
			"3 web key_read tok_a", "2b web retry tok_a", "2 mail order_failed", "1 web issued"}},
		{"certificate", certfleet.EventFilter{Certificate: "mail"}, []string{"5 mail key_read tok_b", "2 mail order_failed"}},
		{"certificate is exact", certfleet.EventFilter{Certificate: "we"}, nil},
		{"kind", certfleet.EventFilter{Kind: certfleet.EventKeyRead}, []string{"8 web key_read tokenish", "5 mail key_read tok_b", "3 web key_read tok_a"}},
		{"actor exact", certfleet.EventFilter{Actor: "token:tok_a"}, []string{"3 web key_read tok_a", "2b web retry tok_a"}},
		{"actor exact is not a prefix", certfleet.EventFilter{Actor: "token:tok"}, nil},
		{"actor prefix token:", certfleet.EventFilter{Actor: "token:"}, []string{"5 mail key_read tok_b", "3 web key_read tok_a", "2b web retry tok_a"}},
		{"actor not ending in a colon is exact", certfleet.EventFilter{Actor: "config:/etc/"}, nil},
		{"actor prefix config:", certfleet.EventFilter{Actor: "config:"}, []string{"6 web config_changed"}},
		{"actor without colon matches nothing", certfleet.EventFilter{Actor: "token"}, nil},
		{"since is inclusive", certfleet.EventFilter{Since: at(6)}, []string{"8 web key_read tokenish", "7 web deployed", "6 web config_changed"}},
		{"until is exclusive", certfleet.EventFilter{Until: at(2)}, []string{"1 web issued"}},
		{"time range", certfleet.EventFilter{Since: at(2), Until: at(4)}, []string{"3 web key_read tok_a", "2b web retry tok_a", "2 mail order_failed"}},
		{"certificate and time", certfleet.EventFilter{Certificate: "web", Since: at(3), Until: at(7)}, []string{"6 web config_changed", "3 web key_read tok_a"}},
		{"certificate and kind", certfleet.EventFilter{Certificate: "web", Kind: certfleet.EventKeyRead}, []string{"8 web key_read tokenish", "3 web key_read tok_a"}},
		{"prefix, kind and certificate", certfleet.EventFilter{Actor: "token:", Kind: certfleet.EventKeyRead, Certificate: "web"}, []string{"3 web key_read tok_a"}},
		{"limit", certfleet.EventFilter{Limit: 2}, []string{"8 web key_read tokenish", "7 web deployed"}},
		{"nothing in range", certfleet.EventFilter{Since: at(100)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := details(mustEvents(t, s, tc.f))
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Events(%+v) =\n %q\nwant\n %q", tc.f, got, tc.want)
			}
		})
	}
	if evs := mustEvents(t, s, certfleet.EventFilter{Since: at(100)}); evs == nil {
		t.Error("an empty result is nil; want an empty slice (it is JSON [] over the API)")
	}
}

func testEventPaging(t *testing.T, s AuditStore) {
	const n = 23
	for i := range n {
		// Pairs share an At, so paging must break ties by ID.
		mustRecord(t, s, certfleet.Event{At: auditBase.Add(time.Duration(i/2) * time.Second), Kind: certfleet.EventKeyRead,
			Actor: fmt.Sprintf("token:tok_%d", i%3), Certificate: []string{"a", "b"}[i%2], Detail: fmt.Sprint(i)})
	}
	all := mustEvents(t, s, certfleet.EventFilter{Limit: 1000})
	if len(all) != n {
		t.Fatalf("%d events, want %d", len(all), n)
	}
	for _, f := range []certfleet.EventFilter{
		{Limit: 4},
		{Limit: 1},
		{Limit: 3, Certificate: "a"},
		{Limit: 2, Actor: "token:"},
		{Limit: 2, Actor: "token:tok_1", Since: auditBase.Add(2 * time.Second)},
	} {
		want := mustEvents(t, s, certfleet.EventFilter{Limit: 1000, Certificate: f.Certificate, Actor: f.Actor, Since: f.Since})
		var got []certfleet.Event
		for pages := 0; ; pages++ {
			if pages > n+1 {
				t.Fatalf("%+v: paging does not end", f)
			}
			page := mustEvents(t, s, f)
			if len(page) > f.Limit {
				t.Fatalf("%+v: page of %d", f, len(page))
			}
			got = append(got, page...)
			if len(page) < f.Limit {
				break
			}
			f.BeforeID = page[len(page)-1].ID
		}
		if !reflect.DeepEqual(details(got), details(want)) {
			t.Errorf("paged %+v:\n %q\nwant\n %q", f, details(got), details(want))
		}
	}
}

func testEventInvalid(t *testing.T, s AuditStore) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		e    certfleet.Event
	}{
		{"no kind", certfleet.Event{Actor: "cli:root"}},
		{"bad kind", certfleet.Event{Kind: "Key Read", Actor: "cli:root"}},
		{"no actor", certfleet.Event{Kind: certfleet.EventRetry}},
		{"actor without type", certfleet.Event{Kind: certfleet.EventRetry, Actor: "root"}},
		{"long certificate", certfleet.Event{Kind: certfleet.EventRetry, Actor: "cli:root", Certificate: strings.Repeat("x", certfleet.MaxEventField+1)}},
		{"NUL in actor", certfleet.Event{Kind: certfleet.EventRetry, Actor: "cli:ro\x00ot"}},
	} {
		wantCode(t, "RecordEvent "+tc.name, s.RecordEvent(ctx, tc.e), certfleet.EINVALID)
	}
	if evs := mustEvents(t, s, certfleet.EventFilter{}); len(evs) != 0 {
		t.Errorf("refused events were stored: %+v", evs)
	}
	mustRecord(t, s, certfleet.Event{Kind: certfleet.EventRetry, Actor: "cli:root"})
	for _, tc := range []struct {
		name string
		f    certfleet.EventFilter
	}{
		{"negative limit", certfleet.EventFilter{Limit: -1}},
		{"huge limit", certfleet.EventFilter{Limit: certfleet.MaxEventLimit + 1}},
		{"bad kind", certfleet.EventFilter{Kind: "ISSUED"}},
		{"until before since", certfleet.EventFilter{Since: auditBase, Until: auditBase.Add(-time.Second)}},
		{"until equals since", certfleet.EventFilter{Since: auditBase, Until: auditBase}},
		{"unknown before_id", certfleet.EventFilter{BeforeID: 1 << 40}},
		{"negative before_id", certfleet.EventFilter{BeforeID: -1}},
	} {
		_, err := s.Events(ctx, tc.f)
		wantCode(t, "Events "+tc.name, err, certfleet.EINVALID)
	}
}

func testEventDetailCap(t *testing.T, s AuditStore) {
	exact := strings.Repeat("x", certfleet.MaxEventDetail)
	// Three-byte runes, so a cut at the cap would split one.
	long := strings.Repeat("€", certfleet.MaxEventDetail) // 3x the cap
	broken := "bad \xff byte and a \x00 NUL"
	mustRecord(t, s, certfleet.Event{At: auditBase, Kind: certfleet.EventOrderFailed, Actor: "instance:i", Detail: exact})
	mustRecord(t, s, certfleet.Event{At: auditBase.Add(time.Second), Kind: certfleet.EventOrderFailed, Actor: "instance:i", Detail: long})
	mustRecord(t, s, certfleet.Event{At: auditBase.Add(2 * time.Second), Kind: certfleet.EventOrderFailed, Actor: "instance:i", Detail: broken})
	evs := mustEvents(t, s, certfleet.EventFilter{})
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	if evs[2].Detail != exact {
		t.Errorf("a Detail of exactly MaxEventDetail (%d bytes) came back as %d bytes", len(exact), len(evs[2].Detail))
	}
	got := evs[1].Detail
	if len(got) > certfleet.MaxEventDetail || !utf8.ValidString(got) {
		t.Errorf("a long Detail came back as %d bytes (valid UTF-8: %v), want at most %d", len(got), utf8.ValidString(got), certfleet.MaxEventDetail)
	}
	kept, note, ok := strings.Cut(got, certfleet.TruncatedMark)
	if !ok || !strings.HasPrefix(long, kept) || len(kept) < certfleet.MaxEventDetail-200 ||
		!strings.Contains(note, fmt.Sprintf("%d bytes in all", len(long))) || !strings.Contains(note, fmt.Sprintf("first %d kept", len(kept))) {
		t.Errorf("a long Detail was not cut visibly: %d bytes kept, note %q", len(kept), note)
	}
	if want := "bad \uFFFD byte and a \uFFFD NUL"; evs[0].Detail != want {
		t.Errorf("Detail with invalid UTF-8 and NUL = %q, want %q", evs[0].Detail, want)
	}
}

func testKeyReadEvent(t *testing.T, s AuditStore) {
	ctx := t.Context()
	r := certfleet.KeyRead{TokenID: "tok_reader", Spec: "web", KeyType: certfleet.ECDSAP256, IssuanceID: 7,
		Serial: "0a0b", Remote: "198.51.100.4:40000", At: auditBase.Add(time.Minute)}
	if err := s.RecordKeyRead(ctx, r); err != nil {
		t.Fatal(err)
	}
	evs := mustEvents(t, s, certfleet.EventFilter{Actor: "token:"})
	if len(evs) != 1 {
		t.Fatalf("key read gave %d events by token:, want 1: %+v", len(evs), evs)
	}
	want := certfleet.Event{ID: evs[0].ID, At: r.At, Kind: certfleet.EventKeyRead, Actor: "token:tok_reader",
		Remote: r.Remote, Certificate: "web", KeyType: certfleet.ECDSAP256, Serial: "0a0b", IssuanceID: 7}
	if !reflect.DeepEqual(evs[0], want) {
		t.Errorf("key_read event:\n got %+v\nwant %+v", evs[0], want)
	}
	reads, err := s.KeyReads(ctx, 0)
	if err != nil || len(reads) != 1 || reads[0].TokenID != "tok_reader" {
		t.Errorf("KeyReads = %+v, %v; the key_reads log must keep the read too", reads, err)
	}
	// An undated read and its event carry the same time.
	if err := s.RecordKeyRead(ctx, certfleet.KeyRead{TokenID: "tok_2", Spec: "web", KeyType: certfleet.ECDSAP256, Remote: "[2001:db8::1]:443"}); err != nil {
		t.Fatal(err)
	}
	reads, _ = s.KeyReads(ctx, 1)
	evs = mustEvents(t, s, certfleet.EventFilter{Actor: "token:tok_2"})
	if len(reads) != 1 || len(evs) != 1 || !reads[0].At.Equal(evs[0].At) || evs[0].Remote != "[2001:db8::1]:443" {
		t.Errorf("undated read %+v and its event %+v differ", reads, evs)
	}
}

func testEventAppendOnly(t *testing.T, s AuditStore, raw RawExec) {
	mustRecord(t, s, certfleet.Event{At: auditBase, Kind: certfleet.EventIssued, Actor: "instance:i", Certificate: "web", Detail: "original"})
	if err := s.RecordKeyRead(t.Context(), certfleet.KeyRead{TokenID: "tok_1", Spec: "web", KeyType: certfleet.ECDSAP256, Remote: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_events SET detail = 'rewritten'`,
		`UPDATE audit_events SET actor = 'cli:nobody' WHERE kind = 'key_read'`,
		`DELETE FROM audit_events`,
		`DELETE FROM audit_events WHERE kind = 'issued'`,
		`UPDATE key_reads SET remote = '10.0.0.1:1'`,
		`DELETE FROM key_reads`,
	} {
		if err := raw(t, s, stmt); err == nil {
			t.Errorf("%s: succeeded; the trail must be append-only", stmt)
		} else if !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v; want the trigger's append-only error", stmt, err)
		}
	}
	// The trail is unchanged, and inserting still works.
	evs := mustEvents(t, s, certfleet.EventFilter{})
	if len(evs) != 2 || evs[1].Detail != "original" || evs[0].Actor != "token:tok_1" {
		t.Errorf("after the refused statements: %+v", evs)
	}
	if err := raw(t, s, `INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
		SELECT at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, 'copy' FROM audit_events WHERE kind = 'issued'`); err != nil {
		t.Errorf("INSERT refused: %v; the trail must accept appends", err)
	}
}
