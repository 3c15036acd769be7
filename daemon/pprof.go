package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/certfleet/certfleet"
)

// PprofEnv names the environment variable that, set to a loopback
// address ("127.0.0.1:6060"), makes serve answer Go's profiler there
// (/debug/pprof/: CPU, heap, goroutines). It is for measuring serve under
// load (internal/cmd/apibench -serve -serve-pprof) and is off unless set; it is
// not in the config file because operators have no use for it.
const PprofEnv = "CERTFLEET_PPROF"

// servePprof answers net/http/pprof on addr until ctx ends. Only loopback
// addresses are accepted: profiles show names, and the endpoints cost CPU.
func (d *Daemon) servePprof(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s=%q: want a loopback address and port, such as 127.0.0.1:6060", PprofEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %q: %w", PprofEnv, addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d.Logger.Warn("the Go profiler is listening ("+PprofEnv+" is set)", "addr", ln.Addr().String())
	// A plain server: a CPU profile takes as long as asked, longer than
	// the API's write timeout.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
			d.Logger.Error("the profiler's listener stopped", certfleet.LogError, err)
		}
	}()
	return nil
}
