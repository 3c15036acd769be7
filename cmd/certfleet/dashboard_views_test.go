package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet/internal/chromium"
)

// docScreenshots are the screenshots committed under docs/, each of a
// view whose elements browseViews checks. CERTFLEET_UPDATE_SCREENSHOTS=1
// rewrites them from the run (review them before committing).
var docScreenshots = []string{"dashboard-timeline.png", "dashboard-incidents.png", "dashboard-audit.png"}

// browseViews visits the timeline, incidents and audit views (issue 15) of
// TestDashboardInBrowser's fleet in the browser, checks what each shows by
// its elements' ids and classes, and saves their screenshots.
func browseViews(t *testing.T, ctx context.Context, page *chromium.Page, base string) {
	t.Helper()
	visit := func(path string) {
		t.Helper()
		if err := page.Navigate(ctx, base+path); err != nil {
			t.Fatal(err)
		}
	}
	visit("/dashboard/timeline")
	expectElements(t, ctx, page, "the timeline", map[string]int{
		`svg#timeline`: 1, `svg#timeline g.tl-lane`: 4, // web, mail ×2, flaky (broken has no certificate)
		`g.tl-lane.failing[data-cert="flaky"] circle.tl-retry`: 1,
		`g.tl-lane[data-cert="web"] circle.tl-renew`:           1,
		`g.tl-lane[data-cert="mail"] rect.tl-seg.tl-ok`:        2,
		`#nav-timeline.here`:                                   1,
	})
	saveDocScreenshot(t, ctx, page, "dashboard-timeline.png")

	visit("/dashboard/incidents")
	expectElements(t, ctx, page, "the incidents", map[string]int{
		`#open-incidents tr.incident[data-cert="web"]`: 1, // lb2 on an old certificate
		`#nav-incidents.here`:                          1,
	})
	saveDocScreenshot(t, ctx, page, "dashboard-incidents.png")

	visit("/dashboard/audit")
	expectElements(t, ctx, page, "the audit trail", map[string]int{
		`#audit-events tr.event.kind-retry[data-cert="broken"]`:       1,
		`#audit-events tr.event.kind-order_failed[data-cert="flaky"]`: 1,
		`#audit-filter`: 1,
	})
	// Filtering by certificate through the form, as an operator would.
	if err := page.Type(ctx, `#audit-filter input[name="certificate"]`, "broken"); err != nil {
		t.Fatal(err)
	}
	if err := page.Click(ctx, `#audit-filter button[type="submit"]`, true); err != nil {
		t.Fatal(err)
	}
	all, err := page.Count(ctx, `#audit-events tr.event`)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := page.Count(ctx, `#audit-events tr.event[data-cert="broken"]`)
	if err != nil || all == 0 || mine != all {
		t.Errorf("the audit filtered by certificate broken shows %d events, %d of them broken's (%v)", all, mine, err)
	}
	saveDocScreenshot(t, ctx, page, "dashboard-audit.png")

	// The committed screenshots exist and are pictures of a page (their
	// pixels are not compared: the elements above are the test).
	for _, name := range docScreenshots {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
		if err != nil {
			t.Errorf("docs/%s: %v (CERTFLEET_UPDATE_SCREENSHOTS=1 go test ./cmd/certfleet -run TestDashboardInBrowser writes it)", name, err)
			continue
		}
		if c, err := png.DecodeConfig(bytes.NewReader(b)); err != nil || c.Width < 800 || c.Height < 200 {
			t.Errorf("docs/%s is not a screenshot of a page: %+v %v", name, c, err)
		}
	}
}

// expectElements checks how many elements match each selector on the
// page.
func expectElements(t *testing.T, ctx context.Context, page *chromium.Page, what string, want map[string]int) {
	t.Helper()
	for sel, n := range want {
		got, err := page.Count(ctx, sel)
		if err != nil {
			t.Fatalf("%s: count %s: %v", what, sel, err)
		}
		if got != n {
			html, _ := page.HTML(ctx)
			t.Errorf("%s: %d elements match %s, want %d\n%s", what, got, sel, n, html)
		}
	}
}

// saveDocScreenshot saves a screenshot as an artifact and, with
// CERTFLEET_UPDATE_SCREENSHOTS set, as docs/name.
func saveDocScreenshot(t *testing.T, ctx context.Context, page *chromium.Page, name string) {
	t.Helper()
	saveScreenshot(t, ctx, page, name)
	if os.Getenv("CERTFLEET_UPDATE_SCREENSHOTS") == "" {
		return
	}
	png, err := os.ReadFile(filepath.Join(artifactDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
