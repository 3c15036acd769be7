package hook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// DefaultSocketTimeout bounds connecting, writing one line and (with Ack)
// reading its acknowledgement.
const DefaultSocketTimeout = 10 * time.Second

// maxAckLine bounds an acknowledgement line.
const maxAckLine = 1024

// Socket writes each payload as one line of JSON to a UNIX stream socket a
// consumer listens on. It keeps the connection between payloads and
// connects again when the consumer went away (a write on a connection it
// had closed fails at once, and is tried once more on a new one).
//
// Without Ack, a payload is delivered once the line was written to the
// socket; one the consumer had not read when it died is lost. With Ack the
// consumer answers each line with the payload's key on a line of its own,
// and only that is a delivery.
type Socket struct {
	// Path is the socket's file.
	Path string
	// Ack makes certfleet wait for the consumer's acknowledgement of each
	// line.
	Ack bool
	// Timeout bounds connecting, writing and waiting for the
	// acknowledgement. Default DefaultSocketTimeout.
	Timeout time.Duration

	mu   sync.Mutex // guards conn, r
	conn net.Conn
	r    *bufio.Reader
}

// Send implements Sender.
func (s *Socket) Send(ctx context.Context, p Payload, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := append(append(make([]byte, 0, len(body)+1), body...), '\n')
	reused := s.conn != nil
	written, err := s.send(ctx, p.Key, line)
	if err != nil && !written && reused && ctx.Err() == nil {
		// The consumer may have restarted since the last line: a new
		// connection, once.
		_, err = s.send(ctx, p.Key, line)
	}
	return err
}

// send writes line on the connection (made if there is none) and waits
// for its acknowledgement; any failure closes the connection. written
// says the line was written.
func (s *Socket) send(ctx context.Context, key string, line []byte) (written bool, err error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultSocketTimeout
	}
	if s.conn == nil {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, timeout)
		conn, err := d.DialContext(dctx, "unix", s.Path)
		cancel()
		if err != nil {
			return false, fmt.Errorf("event socket %s: connect: %w (is the consumer listening?)", s.Path, err)
		}
		s.conn, s.r = conn, bufio.NewReaderSize(conn, maxAckLine)
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetDeadline(deadline)
	if _, err := s.conn.Write(line); err != nil {
		s.closeConn()
		return false, fmt.Errorf("event socket %s: write: %w", s.Path, err)
	}
	if !s.Ack {
		return true, nil
	}
	ack, err := s.r.ReadSlice('\n')
	if err != nil {
		s.closeConn()
		if errors.Is(err, bufio.ErrBufferFull) {
			return true, fmt.Errorf("event socket %s: acknowledgement longer than %d bytes", s.Path, maxAckLine)
		}
		return true, fmt.Errorf("event socket %s: read the acknowledgement of %s: %w", s.Path, key, err)
	}
	if got := strings.TrimSpace(string(ack)); got != key {
		s.closeConn()
		return true, fmt.Errorf("event socket %s: acknowledged %q, want %q (the key of the line just sent)", s.Path, oneLine(got, 100), key)
	}
	return true, nil
}

func (s *Socket) closeConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn, s.r = nil, nil
	}
}

// Close closes the connection, if any.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeConn()
	return nil
}
