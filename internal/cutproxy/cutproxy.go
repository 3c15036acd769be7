// Package cutproxy is a TCP forwarder on a loopback port that a test or a
// benchmark can cut and restore, to take a server (a CA, a database) away
// from its clients and bring it back without stopping it: while cut,
// connections are refused and the ones open are closed, as when the
// server's host goes down.
//
// Stall, in between, holds what clients send (their queries wait) while
// what the server sends still arrives (replies already on their way,
// notifications): a test can so let a notification through and have the
// read it causes fail at the cut that follows, every time.
//
// It forwards bytes only (TLS passes through untouched); it does not
// drop or corrupt traffic, and it is not for production use.
package cutproxy

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// Proxy forwards connections from Addr to a target address.
type Proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener          // nil while cut
	conns map[net.Conn]struct{} // open connections, both sides
	stall chan struct{}         // closed when a Stall ends; nil when none
	cuts  int
	wg    sync.WaitGroup
}

// New starts a proxy on a free loopback port forwarding to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cutproxy: listen: %w", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: make(map[net.Conn]struct{})}
	p.serve(ln)
	return p, nil
}

// Addr is the proxy's address (host:port); it stays the same across cuts.
func (p *Proxy) Addr() string { return p.addr }

// Stall holds the bytes clients send from now on, on open connections and
// new ones, until Restore or Cut; the server's bytes still reach them.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stall == nil {
		p.stall = make(chan struct{})
	}
}

// unstallLocked ends a Stall: held bytes go on (or fail on a closed
// connection).
func (p *Proxy) unstallLocked() {
	if p.stall != nil {
		close(p.stall)
		p.stall = nil
	}
}

// flowing waits while the proxy is stalled.
func (p *Proxy) flowing() {
	p.mu.Lock()
	ch := p.stall
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// Cut closes the listener and every open connection: clients get
// connection refused until Restore. It ends a Stall.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unstallLocked()
	if p.ln == nil {
		return
	}
	p.ln.Close()
	p.ln = nil
	p.cuts++
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore listens again on the same address, and ends a Stall.
func (p *Proxy) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unstallLocked()
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("cutproxy: listen again on %s: %w", p.addr, err)
	}
	p.serveLocked(ln)
	return nil
}

// Close cuts the proxy for good and waits for its goroutines.
func (p *Proxy) Close() {
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveLocked(ln)
}

func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(ln, c)
			}()
		}
	}()
}

// forward copies between c and a new connection to the target until
// either side ends or the proxy is cut.
func (p *Proxy) forward(ln net.Listener, c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln != ln { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.copyHeld(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// copyHeld copies the client's bytes from c to up as io.Copy does,
// holding each read while the proxy is stalled.
func (p *Proxy) copyHeld(up, c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.flowing()
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
