package endpoint

import (
	"fmt"
	"strings"
)

// Step is the stage of a check that failed.
type Step string

// Steps, in the order a check goes through them.
const (
	StepConnect      Step = "connect"      // TCP connection
	StepGreeting     Step = "greeting"     // the server's first line(s): SMTP 220, IMAP "* OK", POP3 "+OK"
	StepCapabilities Step = "capabilities" // SMTP EHLO and its STARTTLS keyword
	StepStartTLS     Step = "starttls"     // the upgrade request (STARTTLS, STLS, SSLRequest) and its answer
	StepHandshake    Step = "handshake"    // the TLS handshake
)

// Error is a failed check: which target, which step, what the server said,
// and what to check.
type Error struct {
	Target Target
	Step   Step
	// Reply is what the server answered when it refused (quoted in the
	// message), "" when it answered nothing usable. Cut at 300 bytes.
	Reply string
	Err   error
}

// maxQuote bounds how much of a server's reply an error quotes: enough for
// any real refusal, too little for a hostile server to flood our logs.
const maxQuote = 300

func newError(t Target, step Step, reply string, err error) *Error {
	if len(reply) > maxQuote {
		reply = reply[:maxQuote] + "…"
	}
	return &Error{Target: t, Step: step, Reply: reply, Err: err}
}

// Error reads "endpoint smtp mx.example.org:25 (SNI mx.example.org): starttls:
// server refused STARTTLS: "454 4.7.0 TLS not available" (check …)".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "endpoint %s: %s: %v", e.Target, e.Step, e.Err)
	if e.Reply != "" {
		fmt.Fprintf(&b, ": server replied %q", e.Reply)
	}
	if h := e.Hint(); h != "" {
		b.WriteString(" (" + h + ")")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Hint says what to check for a failure at this step.
func (e *Error) Hint() string {
	p := e.Target.Protocol
	switch e.Step {
	case StepConnect:
		return "check the address and port, that the service is running, and that no firewall drops the connection"
	case StepGreeting:
		if p == ProtocolPostgres {
			return "check that the port is PostgreSQL's"
		}
		return fmt.Sprintf("check that the port speaks %s in plaintext first; for implicit TLS (e.g. 465, 993, 995) use protocol \"tls\"", strings.ToUpper(string(p)))
	case StepCapabilities:
		return "enable STARTTLS on the server (Postfix: smtpd_tls_security_level = may, with smtpd_tls_chain_files)"
	case StepStartTLS:
		switch p {
		case ProtocolPostgres:
			return "set ssl = on with ssl_cert_file and ssl_key_file in postgresql.conf and reload"
		case ProtocolIMAP, ProtocolPOP3:
			return "enable TLS on the server (Dovecot: ssl = yes, ssl_cert and ssl_key)"
		}
		return "enable TLS on the server and point it at the certificate and key"
	case StepHandshake:
		if e.Target.KeyFamily != "" {
			return fmt.Sprintf("check that the server holds a certificate with an %s key for this name and offers TLS 1.2 (asking for one key family needs TLS 1.2)", strings.ToUpper(e.Target.KeyFamily))
		}
		return "check that the server has a certificate and key configured, that the SNI name is one it serves, and that it offers TLS 1.2 or newer; for a plaintext protocol set the protocol (smtp, imap, pop3, postgres)"
	}
	return ""
}
