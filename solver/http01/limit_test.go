package http01_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/certfleet/certfleet/connlimit"
	"github.com/certfleet/certfleet/solver/http01"
)

// TestResponderConnectionsPerAddress (issue 17, slowloris): one address
// opening connections and sending nothing holds at most the limiter's
// PerIP of them on the responder the CA must reach.
func TestResponderConnectionsPerAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r := &http01.Responder{Tokens: &http01.Tokens{}, Limiter: &connlimit.Limiter{PerIP: 3}}
	go func() { done <- r.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 12 {
		c, err := net.Dial("tcp", ln.Addr().String())
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
	if open > 3 {
		t.Fatalf("%d of 12 idle connections from one address stay open, want at most 3", open)
	}
}
