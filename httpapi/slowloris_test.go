package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/connlimit"
	"github.com/certfleet/certfleet/httpapi"
)

// serveBounded serves the API of a real environment on a loopback port
// with short bounds, and returns its address and the limiter.
func serveBounded(t *testing.T, o httpapi.ServeOptions) string {
	t.Helper()
	e := newEnv(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.ServeWith(ctx, ln, e.srv.Handler(), o) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// closedWithin waits for the server to close c (reading and discarding
// whatever it answers first) and returns how long that took; it fails the
// test if c is still open after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection is still open after %v", what, limit)
	}
	return time.Since(start)
}

// TestSlowloris is issue 17's finding: a client that dribbles a body (75 s
// and counting, unauthenticated), or its headers, or opens connections and
// sends nothing, held them open indefinitely. Each is now closed within its
// bound, one client address holds at most PerIP connections, and a client
// from another address is still served meanwhile.
func TestSlowloris(t *testing.T) {
	const bound = time.Second
	lim := &connlimit.Limiter{PerIP: 5}
	addr := serveBounded(t, httpapi.ServeOptions{ReadHeaderTimeout: bound, BodyTimeout: bound, IdleTimeout: bound, Limiter: lim})
	// Each attack dribbles a byte every 100 ms, for at most 10 s; the
	// server must close the connection within the bound plus slack.
	const slack = 2 * time.Second
	dribble := func(c net.Conn, stop <-chan struct{}) {
		for range 100 {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte("a")); err != nil {
				return
			}
		}
	}
	for _, tc := range []struct{ name, head string }{
		{"slow body, unauthenticated", "PUT /v1/names/slow.example.org HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"},
		{"slow body, bad token", "POST /v1/names/slow.example.org/csr HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer cft_nope\r\nContent-Length: 100000\r\n\r\n"},
		{"slow chunked body", "PUT /v1/names/slow.example.org HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n"},
		{"slow headers", "GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: "},
		{"nothing sent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.head); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			if tc.head != "" {
				go dribble(c, stop)
			}
			if d := closedWithin(t, c, bound+slack, tc.name); d > bound+slack {
				t.Fatalf("%s: closed after %v, want within %v", tc.name, d, bound+slack)
			}
		})
	}

	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
		closedWithin(t, c, bound+slack, "idle after a request") // reads the answer, then waits for the close
	})

	t.Run("connections per address", func(t *testing.T) {
		const attack = 30
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range attack {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			io.WriteString(c, "GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: ") // never finished
		}
		// The server keeps at most PerIP of them; the rest it closes at
		// once.
		time.Sleep(300 * time.Millisecond)
		open := 0
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			var b [1]byte
			if _, err := c.Read(b[:]); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					open++
				}
			}
		}
		if open > lim.PerIP {
			t.Fatalf("%d of %d connections from one address stay open; want at most %d", open, attack, lim.PerIP)
		}
		if lim.Refused() < attack-int64(lim.PerIP) {
			t.Errorf("refused %d connections, want at least %d", lim.Refused(), attack-lim.PerIP)
		}
		// Meanwhile a client from another address is served.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
		client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 5 * time.Second}
		resp, err := client.Get("http://" + addr + "/v1/openapi.json")
		if err != nil {
			t.Fatalf("a client from 127.0.0.2 while 127.0.0.1 holds its limit: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "openapi") {
			t.Fatalf("a client from 127.0.0.2: %d", resp.StatusCode)
		}
		// And the attacker's connections are all gone within the bound.
		for _, c := range conns {
			closedWithin(t, c, bound+slack, "a held connection")
		}
	})
}
