package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
)

func TestOpenStoreChoosesBackend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "certfleet.db")
	s, err := openStore(t.Context(), path, nil)
	if err != nil {
		t.Fatalf("openStore(%s): %v", path, err)
	}
	defer s.Close()
	if _, ok := s.(*sqlite.Store); !ok {
		t.Errorf("openStore(%s) = %T, want *sqlite.Store", path, s)
	}

	dsn := pgtest.DSN(t)
	for _, d := range []string{dsn, strings.Replace(dsn, "postgres://", "postgresql://", 1)} {
		s, err := openStore(t.Context(), d, nil)
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	_, err = openStore(ctx, "postgres://certfleet:pa55w0rd@"+addr.String()+"/fleet?sslmode=disable", nil)
	if err == nil {
		t.Fatal("openStore of a closed port succeeded")
	}
	msg := err.Error()
	for _, want := range []string{addr.String(), `database "fleet"`, "pg_isready -h 127.0.0.1 -p", "pg_hba.conf"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "pa55w0rd") {
		t.Errorf("error %q shows the password", msg)
	}
}

func TestMigrateCommand(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg := filepath.Join(t.TempDir(), "certfleet.toml")
	if err := os.WriteFile(cfg, []byte("state = \""+dsn+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second run finds nothing to do
		var out, errOut bytes.Buffer
		if code := Run(t.Context(), []string{"migrate", "-config", cfg}, &out, &errOut); code != 0 {
			t.Fatalf("migrate exit %d: %s", code, errOut.String())
		}
		if want := "schema version 1 "; !strings.HasPrefix(out.String(), want) {
			t.Errorf("migrate printed %q, want it to start with %q", out.String(), want)
		}
	}
}
