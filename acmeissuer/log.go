package acmeissuer

import (
	"context"
	"log/slog"
)

// demoted passes acmez's own log records on at debug, errors excepted:
// acmez logs protocol details (each renewal-info fetch, each retried
// request: "HTTP request failed; retrying") at info and warn, while
// certfleet's own events already say what happened. During a CA outage
// the retries were a line per request (1,047 in 60 s, issue 16); the
// scheduler reports the outage once when it starts and once when it
// ends, and the Observer counts every request (metrics).
type demoted struct{ h slog.Handler }

// acmezARIAfterDownload is what acmez logs, at error, when the renewalInfo
// request it makes after downloading a certificate fails: certfleet asks
// ARI itself (manager), so this is debug, not an error of ours (it came
// up once per CA outage that caught a download).
const acmezARIAfterDownload = "failed getting renewal information"

func demote(l slog.Level) slog.Level {
	switch {
	case l >= slog.LevelError:
		return l
	case l >= slog.LevelWarn:
		return slog.LevelDebug
	}
	return l - 4
}

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, demote(l))
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	if r.Message == acmezARIAfterDownload {
		r.Level = slog.LevelDebug
		if !d.h.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(as []slog.Attr) slog.Handler { return demoted{d.h.WithAttrs(as)} }
func (d demoted) WithGroup(name string) slog.Handler    { return demoted{d.h.WithGroup(name)} }
