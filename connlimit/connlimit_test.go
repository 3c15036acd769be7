package connlimit_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/certfleet/certfleet/connlimit"
)

// OpenConns dials n connections to addr that send nothing, waits for the
// server to act, and returns how many of them it keeps open. The
// connections are closed when t ends.
func openConns(t *testing.T, addr string, n int) int {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond)
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		}
	}
	return open
}

// TestListener: the wrapped listener returns at most PerIP connections of
// one address at a time, closes the others at once, and admits another
// once one is closed.
func TestListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := &connlimit.Limiter{PerIP: 3}
	ln := lim.Listener(raw)
	defer ln.Close()
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	if open := openConns(t, raw.Addr().String(), 10); open != 3 {
		t.Fatalf("%d of 10 connections stay open, want 3", open)
	}
	if got := lim.Refused(); got != 7 {
		t.Fatalf("Refused() = %d, want 7", got)
	}
	(<-accepted).Close()
	if open := openConns(t, raw.Addr().String(), 2); open != 1 {
		t.Fatalf("after one closed, %d of 2 new connections stay open, want 1", open)
	}
}
