package agent

import (
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
)

// removeStaleTemp removes the temporary files a killed agent left beside
// the files it writes (its certificates' paths, its state and pending
// keys): deploy.RemoveStaleTemp, for files older than started.
func (a *Agent) removeStaleTemp(started time.Time) {
	var paths []string
	for _, w := range a.watchers {
		paths = append(paths, w.c.Files.all()...)
		if p := w.statePath(); p != "" {
			paths = append(paths, p, w.pendingKeyPath())
		}
	}
	removed, err := deploy.RemoveStaleTemp(paths, started)
	for _, p := range removed {
		a.log.Info("removed a temporary file a stopped agent left behind", "path", p)
	}
	if err != nil {
		a.log.Warn("leftover temporary files", certfleet.LogError, err)
	}
}
