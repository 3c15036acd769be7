package acmeissuer

import (
	"context"
	"log/slog"
)

// demoted passes acmez's own log records on one level lower: acmez logs
// protocol details (each renewal-info fetch, each retried request) at info
// and warn, which is debug and info for an operator of certfleet, whose own
// events already say what happened.
type demoted struct{ h slog.Handler }

func demote(l slog.Level) slog.Level {
	if l >= slog.LevelError {
		return l
	}
	return l - 4
}

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, demote(l))
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(as []slog.Attr) slog.Handler { return demoted{d.h.WithAttrs(as)} }
func (d demoted) WithGroup(name string) slog.Handler    { return demoted{d.h.WithGroup(name)} }
