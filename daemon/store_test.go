package daemon_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/internal/porttest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
)

func TestOpenStoreChoosesBackend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "certfleet.db")
	s, err := daemon.OpenStore(t.Context(), path, daemon.Keys{}, nil)
	if err != nil {
		t.Fatalf("openStore(%s): %v", path, err)
	}
	defer s.Close()
	if _, ok := s.(*sqlite.Store); !ok {
		t.Errorf("openStore(%s) = %T, want *sqlite.Store", path, s)
	}

	dsn := pgtest.DSN(t)
	for _, d := range []string{dsn, strings.Replace(dsn, "postgres://", "postgresql://", 1)} {
		s, err := daemon.OpenStore(t.Context(), d, daemon.Keys{}, nil)
		if err != nil {
			t.Fatalf("openStore(postgres): %v", err)
		}
		if _, ok := s.(*postgres.Store); !ok {
			t.Errorf("openStore(%s) = %T, want *postgres.Store", d, s)
		}
		s.Close()
	}
}

// TestOpenStoreUnreachable: the error names the server and what to check,
// never the password.
func TestOpenStoreUnreachable(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(porttest.Free(t))) // reserved, nobody listens
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	_, err := daemon.OpenStore(ctx, "postgres://certfleet:pa55w0rd@"+addr+"/fleet?sslmode=disable", daemon.Keys{}, nil)
	if err == nil {
		t.Fatal("openStore of a closed port succeeded")
	}
	msg := err.Error()
	for _, want := range []string{addr, `database "fleet"`, "pg_isready -h 127.0.0.1 -p", "pg_hba.conf"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "pa55w0rd") {
		t.Errorf("error %q shows the password", msg)
	}
}
