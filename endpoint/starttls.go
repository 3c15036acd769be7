package endpoint

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// upgrade runs the plaintext part of the protocol, up to the point where the
// TLS handshake starts on conn.
func (c *Checker) upgrade(ctx context.Context, conn net.Conn, t Target) error {
	switch t.Protocol {
	case ProtocolTLS:
		return nil
	case ProtocolSMTP:
		return c.smtp(conn, t)
	case ProtocolIMAP:
		return imap(conn, t)
	case ProtocolPOP3:
		return pop3(conn, t)
	case ProtocolPostgres:
		return postgres(conn, t)
	}
	return fmt.Errorf("endpoint %s: unknown protocol %q", t.Address, t.Protocol)
}

// noPipelining refuses bytes that arrived after the server's "go ahead" but
// before the handshake: they were sent in plaintext and would otherwise be
// taken for TLS data, or worse, for a reply inside the TLS session (the
// STARTTLS command injection of CVE-2011-0411, seen from the client side).
// RFC 3207 §4.2: "the client MUST discard any knowledge obtained from the
// server … which was not obtained from the TLS negotiation itself."
func noPipelining(lr *lineReader, t Target) error {
	if n := lr.buffered(); n > 0 {
		return newError(t, StepStartTLS, "", fmt.Errorf("server sent %d bytes of plaintext after agreeing to start TLS", n))
	}
	return nil
}

func write(conn net.Conn, t Target, step Step, line string) error {
	if _, err := io.WriteString(conn, line); err != nil {
		return newError(t, step, "", fmt.Errorf("send: %w", err))
	}
	return nil
}

// smtp: RFC 3207 §4 and §5 — greeting 220, EHLO listing STARTTLS, STARTTLS
// answered "220 Ready to start TLS".
func (c *Checker) smtp(conn net.Conn, t Target) error {
	lr := newLineReader(conn)
	greet, err := readSMTPReply(lr)
	if err != nil {
		return newError(t, StepGreeting, greet.String(), fmt.Errorf("read greeting: %w", err))
	}
	// RFC 5321 §4.2: 220 <domain> Service ready; 554 means no service.
	if greet.Code != 220 {
		return newError(t, StepGreeting, greet.String(), fmt.Errorf("server did not greet with 220"))
	}
	hello := c.HelloName
	if hello == "" {
		hello = "localhost"
	}
	if err := write(conn, t, StepCapabilities, "EHLO "+hello+"\r\n"); err != nil {
		return err
	}
	ehlo, err := readSMTPReply(lr)
	if err != nil {
		return newError(t, StepCapabilities, ehlo.String(), fmt.Errorf("read EHLO reply: %w", err))
	}
	if ehlo.Code != 250 {
		return newError(t, StepCapabilities, ehlo.String(), fmt.Errorf("server refused EHLO"))
	}
	if !ehloHasKeyword(ehlo, "STARTTLS") {
		return newError(t, StepCapabilities, ehlo.String(), fmt.Errorf("server does not offer STARTTLS"))
	}
	if err := write(conn, t, StepStartTLS, "STARTTLS\r\n"); err != nil {
		return err
	}
	rep, err := readSMTPReply(lr)
	if err != nil {
		return newError(t, StepStartTLS, rep.String(), fmt.Errorf("read STARTTLS reply: %w", err))
	}
	// RFC 3207 §4: "220 Ready to start TLS"; 454 "TLS not available due to
	// temporary reason", 501 syntax error.
	if rep.Code != 220 {
		return newError(t, StepStartTLS, rep.String(), fmt.Errorf("server refused STARTTLS"))
	}
	return noPipelining(lr, t)
}

// imapTag tags our one command.
const imapTag = "a1"

// imap: RFC 3501 §6.2.1 (RFC 9051 §6.2.1) — greeting "* OK", then
// "a1 STARTTLS" answered "a1 OK"; "the client MUST NOT issue further commands
// until a server response is seen and the TLS negotiation is complete."
func imap(conn net.Conn, t Target) error {
	lr := newLineReader(conn)
	line, err := lr.readLine()
	if err != nil {
		return newError(t, StepGreeting, "", fmt.Errorf("read greeting: %w", err))
	}
	g, err := parseIMAPLine(line)
	if err != nil {
		return newError(t, StepGreeting, line, err)
	}
	switch {
	case g.Tag == "*" && g.Status == "OK":
	case g.Tag == "*" && g.Status == "PREAUTH":
		// RFC 3501 §6.2.1: STARTTLS is valid in the not authenticated state only.
		return newError(t, StepGreeting, line, errors.New("server greeted with PREAUTH: STARTTLS is not possible in the authenticated state"))
	default:
		return newError(t, StepGreeting, line, errors.New(`server did not greet with "* OK"`))
	}
	if err := write(conn, t, StepStartTLS, imapTag+" STARTTLS\r\n"); err != nil {
		return err
	}
	for i := 0; ; i++ {
		if i == maxReplyLines {
			return newError(t, StepStartTLS, "", fmt.Errorf("no tagged reply to STARTTLS: %w", errTooManyLine))
		}
		line, err := lr.readLine()
		if err != nil {
			return newError(t, StepStartTLS, "", fmt.Errorf("read STARTTLS reply: %w", err))
		}
		r, err := parseIMAPLine(line)
		if err != nil {
			return newError(t, StepStartTLS, line, err)
		}
		if r.Tag == "*" && r.Status != "BYE" {
			continue // untagged data (e.g. CAPABILITY) before the tagged reply
		}
		if r.Tag == imapTag && r.Status == "OK" {
			return noPipelining(lr, t)
		}
		return newError(t, StepStartTLS, line, errors.New("server refused STARTTLS"))
	}
}

// pop3: RFC 2595 §4 — greeting "+OK", then STLS answered "+OK"; "-ERR" means
// TLS is not available.
func pop3(conn net.Conn, t Target) error {
	lr := newLineReader(conn)
	line, err := lr.readLine()
	if err != nil {
		return newError(t, StepGreeting, "", fmt.Errorf("read greeting: %w", err))
	}
	ok, _, err := parsePOP3Line(line)
	if err != nil {
		return newError(t, StepGreeting, line, err)
	}
	if !ok {
		return newError(t, StepGreeting, line, errors.New(`server did not greet with "+OK"`))
	}
	if err := write(conn, t, StepStartTLS, "STLS\r\n"); err != nil {
		return err
	}
	line, err = lr.readLine()
	if err != nil {
		return newError(t, StepStartTLS, "", fmt.Errorf("read STLS reply: %w", err))
	}
	ok, _, err = parsePOP3Line(line)
	if err != nil {
		return newError(t, StepStartTLS, line, err)
	}
	if !ok {
		return newError(t, StepStartTLS, line, errors.New("server refused STLS"))
	}
	return noPipelining(lr, t)
}

// sslRequestCode is the SSLRequest message's request code: "The SSL request
// code. The value is chosen to contain 1234 in the most significant 16 bits,
// and 5679 in the least significant 16 bits." (PostgreSQL protocol, Message
// Formats, SSLRequest.)
const sslRequestCode = 1234<<16 | 5679

// postgres sends the 8-byte SSLRequest (Int32 length 8, Int32 80877103) and
// reads the one-byte answer: 'S' to go ahead, 'N' for no SSL. A server too
// old to know SSLRequest answers with an ErrorResponse ('E'). Only that one
// byte is read, so nothing the server sends after it is taken as plaintext
// (the client side of CVE-2021-23222).
func postgres(conn net.Conn, t Target) error {
	var msg [8]byte
	binary.BigEndian.PutUint32(msg[0:4], 8)
	binary.BigEndian.PutUint32(msg[4:8], sslRequestCode)
	if _, err := conn.Write(msg[:]); err != nil {
		return newError(t, StepStartTLS, "", fmt.Errorf("send SSLRequest: %w", err))
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return newError(t, StepStartTLS, "", fmt.Errorf("read SSLRequest answer: %w", err))
	}
	switch b[0] {
	case 'S':
		return nil
	case 'N':
		return newError(t, StepStartTLS, "N", errors.New("server does not accept SSL connections"))
	case 'E':
		return newError(t, StepStartTLS, "E", errors.New("server answered SSLRequest with an error message"))
	}
	return newError(t, StepGreeting, fmt.Sprintf("%q", b[0]), errors.New("not a PostgreSQL answer to SSLRequest"))
}
