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
	l.Warn("retrying request")
	l.Error("broken")
	out := buf.String()
	if strings.Contains(out, "protocol detail") {
		t.Errorf("acmez info reached an info-level log: %s", out)
	}
	if !strings.Contains(out, `level=INFO msg="retrying request"`) || !strings.Contains(out, "level=ERROR msg=broken") {
		t.Errorf("warn should become info and error stay error:\n%s", out)
	}
}
