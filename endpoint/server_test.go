package endpoint_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// server is a loopback listener that runs handle on every connection.
type server struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []string // lines received and events, in order (guarded by mu)
	sni  []string // SNI names seen in handshakes (guarded by mu)
}

// Addr is host:port of the listener.
func (s *server) Addr() string { return s.ln.Addr().String() }

func (s *server) record(line string) {
	s.mu.Lock()
	s.seen = append(s.seen, line)
	s.mu.Unlock()
}

// Seen returns what the server recorded so far.
func (s *server) Seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// SNI returns the server names clients sent.
func (s *server) SNI() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sni...)
}

// newServer starts a loopback server; it stops (closing the listener and
// waiting for its handlers) when the test ends. Handlers must return once
// the client closes the connection.
func newServer(t testing.TB, handle func(s *server, c net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	conns := make(map[net.Conn]bool)
	var mu sync.Mutex
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(s, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// tlsConfig serves cert, recording the SNI name.
func (s *server) tlsConfig(cert tls.Certificate, alpn ...string) *tls.Config {
	return &tls.Config{
		NextProtos: alpn,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			s.sni = append(s.sni, hello.ServerName)
			s.mu.Unlock()
			return &cert, nil
		},
	}
}

// serveTLS completes a handshake on c with conf, then waits for the client
// to go, recording what it sends (e.g. QUIT).
func (s *server) serveTLS(c net.Conn, conf *tls.Config) {
	tc := tls.Server(c, conf)
	if err := tc.Handshake(); err != nil {
		s.record("handshake error: " + err.Error())
		return
	}
	s.record("handshake ok")
	br := bufio.NewReader(tc)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			s.record(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			return
		}
	}
}

// newTLSServer serves cert with implicit TLS.
func newTLSServer(t testing.TB, cert tls.Certificate, alpn ...string) *server {
	t.Helper()
	return newServer(t, func(s *server, c net.Conn) {
		s.serveTLS(c, s.tlsConfig(cert, alpn...))
	})
}

// script is a plaintext exchange: the server writes each step's reply after
// reading the client line that step expects ("" expects nothing).
type step struct {
	expect string // prefix of the client line to read first; "" reads nothing
	reply  string
}

// newScriptServer runs steps in plaintext, then a TLS handshake with cert
// when startTLS is set.
func newScriptServer(t testing.TB, cert tls.Certificate, startTLS bool, steps ...step) *server {
	t.Helper()
	return newServer(t, func(s *server, c net.Conn) {
		// Unbuffered line reads: nothing of the ClientHello may be consumed.
		for _, st := range steps {
			if st.expect != "" {
				line, err := readLineRaw(c)
				if err != nil {
					s.record("read error: " + err.Error())
					return
				}
				s.record(line)
				if !strings.HasPrefix(line, st.expect) {
					s.record("unexpected line")
					return
				}
			}
			if _, err := io.WriteString(c, st.reply); err != nil {
				return
			}
		}
		if startTLS {
			s.serveTLS(c, s.tlsConfig(cert))
			return
		}
		io.Copy(io.Discard, c) // wait for the client to leave
	})
}

// readLineRaw reads one line a byte at a time.
func readLineRaw(c net.Conn) (string, error) {
	var b []byte
	var one [1]byte
	for len(b) < 1024 {
		if _, err := c.Read(one[:]); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return strings.TrimSuffix(string(b), "\r"), nil
		}
		b = append(b, one[0])
	}
	return string(b), errors.New("line too long")
}
