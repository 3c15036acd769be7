package daemon

import (
	"log/slog"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/deploy"
)

// removeStaleTemp removes the temporary files a killed certfleet left
// beside the files serve writes for the configuration's certificates
// (output_dir's files and the copies): deploy.RemoveStaleTemp, for files
// older than started. Certificates of inventory sources and exports are
// not covered.
func removeStaleTemp(cfg *config.Config, started time.Time, log *slog.Logger) {
	var paths []string
	for _, c := range cfg.Certificates {
		if c.Output.Dir != "" {
			paths = append(paths, deploy.TargetFiles(c.Output.Dir, c.Spec)...)
		}
		for _, cp := range copiesOf(c) {
			paths = append(paths, cp.Path)
		}
	}
	removed, err := deploy.RemoveStaleTemp(paths, started)
	for _, p := range removed {
		log.Info("removed a temporary file a stopped certfleet left behind", certfleet.LogPath, p)
	}
	if err != nil {
		log.Warn("leftover temporary files", certfleet.LogError, err)
	}
}
