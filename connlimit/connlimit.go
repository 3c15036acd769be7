// Package connlimit bounds how many connections one client address may
// hold open on a server at once, so that one client opening connections and
// leaving them idle or dribbling bytes (slowloris) cannot take every
// connection a server can hold. A connection over the limit is closed as
// soon as it is accepted, before anything is read from it.
//
// It does not bound request rates, total connections or time: read and idle
// timeouts are the server's (http.Server's ReadHeaderTimeout, IdleTimeout,
// and httpapi's body deadline); a limiter only counts.
package connlimit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
)

// DefaultPerIP is the default limit: above what one client opens — an
// agent holds one long-poll connection per certificate it watches, a
// consumer such as Caddy or Bud on the same host about one per concurrent
// handshake, a browser six — and far below the tens of thousands of file
// descriptors a slowloris needs to exhaust a server. Behind a reverse proxy
// every client shares the proxy's address: serve such a listener with a
// Limiter of a higher PerIP (or -1).
const DefaultPerIP = 256

// Limiter counts open connections per client IP address. Use its ConnState
// as an http.Server's ConnState (the connection stays the *tls.Conn the
// server needs), or Listener to wrap the listener of a server that accepts
// itself. A zero Limiter uses DefaultPerIP; it is safe for concurrent use.
type Limiter struct {
	// PerIP is the most connections one IP address may hold open;
	// 0 means DefaultPerIP, a negative value no limit.
	PerIP int

	mu    sync.Mutex // guards open, conns
	open  map[netip.Addr]int
	conns map[net.Conn]netip.Addr

	refused atomic.Int64
}

// Refused returns how many connections the limiter has closed at accept.
func (l *Limiter) Refused() int64 { return l.refused.Load() }

// Open returns how many connections ip holds open.
func (l *Limiter) Open(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[ip.Unmap()]
}

func (l *Limiter) max() int {
	if l.PerIP == 0 {
		return DefaultPerIP
	}
	return l.PerIP
}

// addrOf returns the IP address of a connection's remote end; ok is false
// for addresses without one (a UNIX socket), which are not counted.
func addrOf(c net.Conn) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// admit counts c and reports whether it may stay open.
func (l *Limiter) admit(c net.Conn) bool {
	ip, ok := addrOf(c)
	if !ok || l.max() < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip] >= l.max() {
		l.refused.Add(1)
		return false
	}
	if l.open == nil {
		l.open, l.conns = map[netip.Addr]int{}, map[net.Conn]netip.Addr{}
	}
	l.open[ip]++
	l.conns[c] = ip
	return true
}

// release uncounts c (once; later calls do nothing).
func (l *Limiter) release(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip, ok := l.conns[c]
	if !ok {
		return
	}
	delete(l.conns, c)
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

// ConnState is an http.Server's ConnState hook: a new connection over its
// IP's limit is closed before the server reads from it; a closed or
// hijacked one is uncounted.
func (l *Limiter) ConnState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		if !l.admit(c) {
			c.Close()
		}
	case http.StateClosed, http.StateHijacked:
		l.release(c)
	}
}

// Listener wraps ln: Accept closes connections over their IP's limit and
// returns the others, uncounted when closed.
func (l *Limiter) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

type listener struct {
	net.Listener
	l *Limiter
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !ln.l.admit(c) {
			c.Close()
			continue
		}
		return &conn{Conn: c, l: ln.l}, nil
	}
}

type conn struct {
	net.Conn
	l    *Limiter
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.l.release(c.Conn) })
	return c.Conn.Close()
}
