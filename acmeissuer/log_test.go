package acmeissuer

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestDemotedLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(demoted{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})})
	l.Info("protocol detail")
	// acmez's own retry line, a line per request during a CA outage
	// (issue 16): debug only.
	l.Warn("HTTP request failed; retrying")
	l.Error("broken")
	l.Error("failed getting renewal information") // acmez's own ARI after a download: ours is the manager's
	out := buf.String()
	if strings.Contains(out, "protocol detail") {
		t.Errorf("acmez info reached an info-level log: %s", out)
	}
	if strings.Contains(out, "retrying") || strings.Contains(out, "renewal information") {
		t.Errorf("acmez's retry line reached an info-level log:\n%s", out)
	}
	if !strings.Contains(out, "level=ERROR msg=broken") {
		t.Errorf("error should stay error:\n%s", out)
	}
	buf.Reset()
	l = slog.New(demoted{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	l.Warn("HTTP request failed; retrying")
	if !strings.Contains(out+buf.String(), `level=DEBUG msg="HTTP request failed; retrying"`) {
		t.Errorf("the retry line should be kept at debug:\n%s", buf.String())
	}
}
