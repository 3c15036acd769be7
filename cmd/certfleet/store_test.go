package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
)

func TestOpenStoreChoosesBackend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "certfleet.db")
	s, err := openStore(t.Context(), path, nil, config.MasterKey{})
	if err != nil {
		t.Fatalf("openStore(%s): %v", path, err)
	}
	defer s.Close()
	if _, ok := s.(*sqlite.Store); !ok {
		t.Errorf("openStore(%s) = %T, want *sqlite.Store", path, s)
	}

	dsn := pgtest.DSN(t)
	for _, d := range []string{dsn, strings.Replace(dsn, "postgres://", "postgresql://", 1)} {
		s, err := openStore(t.Context(), d, nil, config.MasterKey{})
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
	_, err = openStore(ctx, "postgres://certfleet:pa55w0rd@"+addr.String()+"/fleet?sslmode=disable", nil, config.MasterKey{})
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
		if want := fmt.Sprintf("schema version %d ", postgres.LatestVersion()); !strings.HasPrefix(out.String(), want) {
			t.Errorf("migrate printed %q, want it to start with %q", out.String(), want)
		}
	}
}

// TestServeWaitsForTheDatabase starts serve while its PostgreSQL is
// unreachable (a proxy port with nothing behind it yet), then brings the
// database up: serve must keep retrying, not exit, and then issue.
func TestServeWaitsForTheDatabase(t *testing.T) {
	dsn := pgtest.DSN(t) // skips (or fails under CI) without PostgreSQL
	real := dsnHostPort(t, dsn)
	proxyAddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(freePort(t)))

	ca, port := newTestCA(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, ca, port, "[[certificate]]\nname = \"db\"\nidentifiers = [\"db.certfleet.test\"]\n")
	text, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(text), `state = "state.db"`,
		fmt.Sprintf("state = %q", strings.Replace(dsn, real, proxyAddr, 1)), 1)), 0o600)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr syncBuffer
	exited := make(chan int, 1)
	go func() { exited <- Run(ctx, []string{"serve", "-config", path}, io.Discard, &stderr) }()

	time.Sleep(3 * time.Second) // at least two failed attempts
	select {
	case code := <-exited:
		t.Fatalf("serve exited (%d) while the database was down:\n%s", code, stderr.String())
	default:
	}
	if !strings.Contains(stderr.String(), "retrying in") || !strings.Contains(stderr.String(), proxyAddr) {
		t.Fatalf("serve did not say it is waiting for %s:\n%s", proxyAddr, stderr.String())
	}
	// The database comes up.
	ln, err := net.Listen("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go forward(ln, real)
	deadline := time.Now().Add(time.Minute)
	for ca.Finalizations() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no certificate issued after the database came up:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("serve exit %d after shutdown:\n%s", code, stderr.String())
	}
}

// dsnHostPort returns the host:port of a postgres URL.
func dsnHostPort(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// forward proxies every connection on ln to target until ln closes.
func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			b, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer b.Close()
			go io.Copy(b, c)
			io.Copy(c, b)
		}()
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
