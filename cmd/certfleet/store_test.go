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
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
)

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
	proxyAddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(daemontest.FreePort(t)))

	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"db\"\nidentifiers = [\"db.certfleet.test\"]\n")
	text, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(text), `state = "state.db"`,
		fmt.Sprintf("state = %q", strings.Replace(dsn, real, proxyAddr, 1)), 1)), 0o600)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr daemontest.SyncBuffer
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
