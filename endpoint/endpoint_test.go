package endpoint_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/endpoint"
	"github.com/certfleet/certfleet/internal/porttest"
)

// fixture is a CA with an old and a new certificate for the same names,
// as after a renewal.
type fixture struct {
	ca       *testCA
	old, new leaf
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	ca := newTestCA(t, "test")
	now := time.Now()
	names := []string{"www.example.test", "example.test"}
	return fixture{
		ca:  ca,
		old: ca.issue(t, names, now.Add(-2*time.Hour), now.Add(time.Hour), false),
		new: ca.issue(t, names, now.Add(-time.Minute), now.Add(12*time.Hour), false),
	}
}

func (f fixture) checker() *endpoint.Checker {
	return &endpoint.Checker{Roots: f.ca.roots, Timeout: 5 * time.Second}
}

// TestCheckNewAndOld is the issue's acceptance test: two TLS servers, one
// serving the renewed certificate and one the old one; the first is ok, the
// second stale, naming both serials and the old issuance.
func TestCheckNewAndOld(t *testing.T) {
	f := newFixture(t)
	srvNew := newTLSServer(t, f.new.tls)
	srvOld := newTLSServer(t, f.old.tls)
	want := endpoint.Expectation{
		Current:    []certfleet.Issuance{f.new.iss},
		Archive:    []certfleet.Issuance{f.new.iss, f.old.iss},
		WarnBefore: time.Hour,
	}
	c := f.checker()

	res, err := c.Check(t.Context(), endpoint.Target{Address: srvNew.Addr(), ServerName: "www.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fingerprint != f.new.iss.Fingerprint || res.Serial != f.new.iss.Serial {
		t.Errorf("served fingerprint %s serial %s, want %s %s", res.Fingerprint, res.Serial, f.new.iss.Fingerprint, f.new.iss.Serial)
	}
	if !res.NotAfter.Equal(f.new.cert.NotAfter) || len(res.Chain) != 2 || res.Leaf == nil {
		t.Errorf("result NotAfter %v chain %d, want %v and 2", res.NotAfter, len(res.Chain), f.new.cert.NotAfter)
	}
	if !res.ChainVerified || res.VerifyError != "" {
		t.Errorf("ChainVerified = %v (%s), want true", res.ChainVerified, res.VerifyError)
	}
	if res.TLSVersion != tls.VersionTLS13 || res.Duration <= 0 {
		t.Errorf("TLSVersion %x Duration %v", res.TLSVersion, res.Duration)
	}
	if got := srvNew.SNI(); !slices.Equal(got, []string{"www.example.test"}) {
		t.Errorf("server saw SNI %q, want www.example.test", got)
	}
	v := endpoint.Compare(res, want, time.Now())
	if v.Status != endpoint.StatusOK || v.Err() != nil || len(v.Warnings) != 0 {
		t.Errorf("new server: verdict %+v, want ok without warnings", v)
	}

	res, err = c.Check(t.Context(), endpoint.Target{Address: srvOld.Addr(), ServerName: "example.test"})
	if err != nil {
		t.Fatal(err)
	}
	v = endpoint.Compare(res, want, time.Now())
	if v.Status != endpoint.StatusStale || v.ServedIssuance != f.old.iss.ID || v.ServedSerial != f.old.iss.Serial || v.WantSerial != f.new.iss.Serial {
		t.Errorf("old server: verdict %+v, want stale, issuance %d, serials %s→%s", v, f.old.iss.ID, f.old.iss.Serial, f.new.iss.Serial)
	}
	for _, s := range []string{certfleet.FormatSerial(f.old.iss.Serial), certfleet.FormatSerial(f.new.iss.Serial)} {
		if !strings.Contains(v.Message, s) {
			t.Errorf("stale message %q does not name serial %s", v.Message, s)
		}
	}
	if v.Err() == nil {
		t.Error("stale verdict has no error")
	}
}

// TestCheckChainVerification: a server serving the leaf without its
// intermediate, or checked under a name the certificate does not cover, is
// still read (we compare, not trust) but not verified, and the verdict warns.
func TestCheckChainVerification(t *testing.T) {
	f := newFixture(t)
	leafOnly := newTLSServer(t, f.new.leafOnly())
	full := newTLSServer(t, f.new.tls)
	other := newTestCA(t, "other")
	want := endpoint.Expectation{Current: []certfleet.Issuance{f.new.iss}}
	for _, tc := range []struct {
		name    string
		addr    string
		sni     string
		roots   *endpoint.Checker
		verify  bool
		errPart string
	}{
		{"full chain", full.Addr(), "example.test", f.checker(), true, ""},
		{"leaf only", leafOnly.Addr(), "example.test", f.checker(), false, "unknown authority"},
		{"wrong name", full.Addr(), "mail.example.test", f.checker(), false, "mail.example.test"},
		{"other roots", full.Addr(), "example.test", &endpoint.Checker{Roots: other.roots}, false, "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.roots.Check(t.Context(), endpoint.Target{Address: tc.addr, ServerName: tc.sni})
			if err != nil {
				t.Fatal(err)
			}
			if res.ChainVerified != tc.verify || !strings.Contains(res.VerifyError, tc.errPart) {
				t.Errorf("ChainVerified %v (%q), want %v and an error containing %q", res.ChainVerified, res.VerifyError, tc.verify, tc.errPart)
			}
			v := endpoint.Compare(res, want, time.Now())
			if v.Status != endpoint.StatusOK {
				t.Errorf("status %s, want ok (the right certificate is served): %s", v.Status, v.Message)
			}
			if got := len(v.Warnings) > 0; got == tc.verify {
				t.Errorf("warnings %q, want some: %v", v.Warnings, !tc.verify)
			}
		})
	}
}

// TestCheckALPNAndIP: offered ALPN is negotiated and reported; an IP address
// target sends no SNI and verifies against the IP SAN.
func TestCheckALPNAndIP(t *testing.T) {
	ca := newTestCA(t, "test")
	l := ca.issue(t, []string{"127.0.0.1"}, time.Now().Add(-time.Minute), time.Now().Add(time.Hour), true)
	srv := newTLSServer(t, l.tls, "h2", "http/1.1")
	res, err := (&endpoint.Checker{Roots: ca.roots}).Check(t.Context(), endpoint.Target{Address: srv.Addr(), ALPN: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ALPN != "http/1.1" || !res.ChainVerified || res.Target.ServerName != "" {
		t.Errorf("ALPN %q verified %v (%s) SNI %q; want http/1.1, true, none", res.ALPN, res.ChainVerified, res.VerifyError, res.Target.ServerName)
	}
	if got := srv.SNI(); !slices.Equal(got, []string{""}) {
		t.Errorf("server saw SNI %q, want none", got)
	}
}

// smtpSteps is a well-behaved Postfix-like STARTTLS exchange.
var smtpSteps = []step{
	{"", "220-mx.example.test ESMTP\r\n220 welcome\r\n"},
	{"EHLO ", "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-starttls\r\n250 8BITMIME\r\n"},
	{"STARTTLS", "220 2.0.0 Ready to start TLS\r\n"},
}

// TestCheckStartTLS runs each STARTTLS protocol against a responder that
// upgrades, and checks the certificate read is the one served after it.
func TestCheckStartTLS(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		proto endpoint.Protocol
		steps []step
		want  []string // what the server must have received, in order
	}{
		{endpoint.ProtocolSMTP, smtpSteps, []string{"EHLO mail-checker.test", "STARTTLS", "handshake ok", "QUIT"}},
		{endpoint.ProtocolIMAP, []step{
			{"", "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Dovecot ready.\r\n"},
			{"a1 STARTTLS", "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK Begin TLS negotiation now.\r\n"},
		}, []string{"a1 STARTTLS", "handshake ok", "a2 LOGOUT"}},
		{endpoint.ProtocolPOP3, []step{
			{"", "+OK Dovecot ready.\r\n"},
			{"STLS", "+OK Begin TLS negotiation now.\r\n"},
		}, []string{"STLS", "handshake ok", "QUIT"}},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			srv := newScriptServer(t, f.new.tls, true, tc.steps...)
			c := f.checker()
			c.HelloName = "mail-checker.test"
			res, err := c.Check(t.Context(), endpoint.Target{Address: srv.Addr(), ServerName: "example.test", Protocol: tc.proto})
			if err != nil {
				t.Fatal(err)
			}
			if res.Fingerprint != f.new.iss.Fingerprint || !res.ChainVerified {
				t.Errorf("fingerprint %s verified %v, want %s and true", res.Fingerprint, res.ChainVerified, f.new.iss.Fingerprint)
			}
			waitSeen(t, srv, tc.want)
		})
	}
}

// waitSeen waits (briefly) until the server recorded want: the goodbye is
// written after Check has what it needs, so it may arrive a little later.
func waitSeen(t *testing.T, srv *server, want []string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := srv.Seen()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server received %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCheckPostgres: an SSLRequest responder answering 'S', then TLS.
func TestCheckPostgres(t *testing.T) {
	f := newFixture(t)
	srv := newServer(t, func(s *server, c net.Conn) {
		var msg [8]byte
		if _, err := io.ReadFull(c, msg[:]); err != nil {
			return
		}
		if binary.BigEndian.Uint32(msg[:4]) != 8 || binary.BigEndian.Uint32(msg[4:]) != 80877103 {
			s.record("not an SSLRequest")
			return
		}
		s.record("SSLRequest")
		c.Write([]byte{'S'})
		s.serveTLS(c, s.tlsConfig(f.new.tls))
	})
	res, err := f.checker().Check(t.Context(), endpoint.Target{Address: srv.Addr(), ServerName: "example.test", Protocol: "postgres"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fingerprint != f.new.iss.Fingerprint {
		t.Errorf("fingerprint %s, want %s", res.Fingerprint, f.new.iss.Fingerprint)
	}
	waitSeen(t, srv, []string{"SSLRequest", "handshake ok"})
}

// TestCheckFailures: each way a check fails names the target and step, quotes
// the server's reply when it refused, and comes back within the timeout.
func TestCheckFailures(t *testing.T) {
	f := newFixture(t)
	refused := net.JoinHostPort("127.0.0.1", strconv.Itoa(porttest.Free(t))) // reserved, nobody listens
	silent := newServer(t, func(s *server, c net.Conn) { io.Copy(io.Discard, c) })
	endless := func(line string) *server {
		return newServer(t, func(s *server, c net.Conn) {
			for {
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
			}
		})
	}
	noLF := endless(strings.Repeat("A", 1000))
	manyLines := endless("220-still greeting\r\n")
	script := func(steps ...step) string { return newScriptServer(t, f.new.tls, false, steps...).Addr() }
	pgAnswer := func(b byte) string {
		return newServer(t, func(s *server, c net.Conn) {
			var msg [8]byte
			io.ReadFull(c, msg[:])
			c.Write([]byte{b})
			io.Copy(io.Discard, c)
		}).Addr()
	}
	for _, tc := range []struct {
		name    string
		target  endpoint.Target
		step    endpoint.Step
		reply   string   // the quoted reply, "" for none
		msg     []string // parts of the error message
		timeout bool
	}{
		{"connection refused", endpoint.Target{Address: refused}, endpoint.StepConnect, "", []string{"connection refused", "firewall"}, false},
		{"smtp refuses starttls",
			endpoint.Target{Address: script(smtpSteps[0], smtpSteps[1], step{"STARTTLS", "454 4.7.0 TLS not available due to local problem\r\n"}), Protocol: "smtp"},
			endpoint.StepStartTLS, "454 4.7.0 TLS not available due to local problem", []string{"refused STARTTLS", `"454 4.7.0 TLS not available due to local problem"`}, false},
		{"smtp without starttls",
			endpoint.Target{Address: script(smtpSteps[0], step{"EHLO", "250-mx.example.test\r\n250 SIZE 1000\r\n"}), Protocol: "smtp"},
			endpoint.StepCapabilities, "250-mx.example.test\n250 SIZE 1000", []string{"does not offer STARTTLS", "smtpd_tls_security_level"}, false},
		{"smtp service not available",
			endpoint.Target{Address: script(step{"", "554 5.3.2 no service here\r\n"}), Protocol: "smtp"},
			endpoint.StepGreeting, "554 5.3.2 no service here", []string{"did not greet with 220"}, false},
		{"smtp refuses ehlo",
			endpoint.Target{Address: script(smtpSteps[0], step{"EHLO", "502 5.5.2 what\r\n"}), Protocol: "smtp"},
			endpoint.StepCapabilities, "502 5.5.2 what", []string{"refused EHLO"}, false},
		{"smtp plaintext after starttls reply",
			endpoint.Target{Address: script(smtpSteps[0], smtpSteps[1], step{"STARTTLS", "220 go ahead\r\n250 injected\r\n"}), Protocol: "smtp"},
			endpoint.StepStartTLS, "", []string{"plaintext after agreeing"}, false},
		{"smtp garbage greeting",
			endpoint.Target{Address: script(step{"", "HTTP/1.1 400 Bad Request\r\n"}), Protocol: "smtp"},
			endpoint.StepGreeting, "", []string{"not an SMTP reply"}, false},
		{"smtp reply code changes",
			endpoint.Target{Address: script(step{"", "220-hello\r\n250 hello\r\n"}), Protocol: "smtp"},
			endpoint.StepGreeting, "220-hello", []string{"changed from 220 to 250"}, false},
		{"smtp banner timeout", endpoint.Target{Address: silent.Addr(), Protocol: "smtp", Timeout: 300 * time.Millisecond},
			endpoint.StepGreeting, "", []string{"no answer within the 300ms timeout"}, true},
		{"oversized line", endpoint.Target{Address: noLF.Addr(), Protocol: "smtp"}, endpoint.StepGreeting, "", []string{"line longer than 4096 bytes"}, false},
		{"endless reply", endpoint.Target{Address: manyLines.Addr(), Protocol: "smtp"}, endpoint.StepGreeting, strings.Repeat("220-still greeting\n", 5) + "… 123 more lines", []string{"reply longer than 128 lines"}, false},
		{"oversized imap line", endpoint.Target{Address: noLF.Addr(), Protocol: "imap"}, endpoint.StepGreeting, "", []string{"line longer than 4096 bytes"}, false},
		{"imap refuses",
			endpoint.Target{Address: script(step{"", "* OK ready\r\n"}, step{"a1 STARTTLS", "a1 BAD unknown command\r\n"}), Protocol: "imap"},
			endpoint.StepStartTLS, "a1 BAD unknown command", []string{"refused STARTTLS"}, false},
		{"imap preauth",
			endpoint.Target{Address: script(step{"", "* PREAUTH logged in\r\n"}), Protocol: "imap"},
			endpoint.StepGreeting, "* PREAUTH logged in", []string{"PREAUTH"}, false},
		{"imap endless untagged", endpoint.Target{Address: endless("* OK still\r\n").Addr(), Protocol: "imap"},
			endpoint.StepStartTLS, "", []string{"128 lines"}, false},
		{"imap timeout", endpoint.Target{Address: silent.Addr(), Protocol: "imap", Timeout: 200 * time.Millisecond},
			endpoint.StepGreeting, "", []string{"timeout"}, true},
		{"pop3 refuses",
			endpoint.Target{Address: script(step{"", "+OK ready\r\n"}, step{"STLS", "-ERR TLS support not configured\r\n"}), Protocol: "pop3"},
			endpoint.StepStartTLS, "-ERR TLS support not configured", []string{"refused STLS", "Dovecot"}, false},
		{"pop3 garbage", endpoint.Target{Address: script(step{"", "220 smtp here\r\n"}), Protocol: "pop3"},
			endpoint.StepGreeting, "220 smtp here", []string{"not a POP3 response"}, false},
		{"postgres refuses ssl", endpoint.Target{Address: pgAnswer('N'), Protocol: "postgres"},
			endpoint.StepStartTLS, "N", []string{"does not accept SSL", "postgresql.conf"}, false},
		{"postgres timeout", endpoint.Target{Address: silent.Addr(), Protocol: "postgres", Timeout: 200 * time.Millisecond},
			endpoint.StepStartTLS, "", []string{"timeout"}, true},
		{"not tls", endpoint.Target{Address: script(step{"", "220 smtp here, not TLS\r\n"})},
			endpoint.StepHandshake, "", []string{"handshake", "protocol (smtp"}, false},
		{"tls handshake timeout", endpoint.Target{Address: silent.Addr(), Timeout: 200 * time.Millisecond},
			endpoint.StepHandshake, "", []string{"timeout"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, err := f.checker().Check(t.Context(), tc.target)
			elapsed := time.Since(start)
			var e *endpoint.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want *endpoint.Error; result %+v", err, err, res)
			}
			if e.Step != tc.step || e.Reply != tc.reply {
				t.Errorf("step %q reply %q, want %q %q (%v)", e.Step, e.Reply, tc.step, tc.reply, err)
			}
			msg := err.Error()
			for _, part := range append([]string{tc.target.Address, string(tc.step) + ":"}, tc.msg...) {
				if !strings.Contains(msg, part) {
					t.Errorf("error %q does not contain %q", msg, part)
				}
			}
			var ne net.Error
			if got := errors.As(err, &ne) && ne.Timeout(); got != tc.timeout {
				t.Errorf("timeout error: %v, want %v (%v)", got, tc.timeout, err)
			}
			if elapsed > 3*time.Second {
				t.Errorf("took %v; every failure must be bounded", elapsed)
			}
			if res.Leaf != nil {
				t.Errorf("result has a leaf after an error")
			}
		})
	}
}

// TestCheckCanceled: cancelling the context ends a check blocked on a silent
// server at once, whatever the timeout.
func TestCheckCanceled(t *testing.T) {
	silent := newServer(t, func(s *server, c net.Conn) { io.Copy(io.Discard, c) })
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := (&endpoint.Checker{Timeout: time.Minute}).Check(ctx, endpoint.Target{Address: silent.Addr(), Protocol: "smtp"})
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("error %v, want a cancellation", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled check took %v", d)
	}
}

func TestTargetNormalize(t *testing.T) {
	for _, tc := range []struct {
		in      endpoint.Target
		want    endpoint.Target
		wantErr string
	}{
		{endpoint.Target{Address: "Mail.Example.org."}, endpoint.Target{Address: "Mail.Example.org.:443", ServerName: "mail.example.org", Protocol: "tls"}, ""},
		{endpoint.Target{Address: "mx.example.org", Protocol: "SMTP"}, endpoint.Target{Address: "mx.example.org:25", ServerName: "mx.example.org", Protocol: "smtp"}, ""},
		{endpoint.Target{Address: "db:6432", Protocol: "postgres", ServerName: "db.example.org"}, endpoint.Target{Address: "db:6432", ServerName: "db.example.org", Protocol: "postgres"}, ""},
		{endpoint.Target{Address: "192.0.2.1", Protocol: "imap"}, endpoint.Target{Address: "192.0.2.1:143", Protocol: "imap"}, ""},
		{endpoint.Target{Address: "2001:db8::1", Protocol: "pop3"}, endpoint.Target{Address: "[2001:db8::1]:110", Protocol: "pop3"}, ""},
		{endpoint.Target{Address: "[2001:db8::1]:995"}, endpoint.Target{Address: "[2001:db8::1]:995", Protocol: "tls"}, ""},
		{endpoint.Target{Address: ""}, endpoint.Target{}, "no address"},
		{endpoint.Target{Address: "x:0"}, endpoint.Target{}, "bad port"},
		{endpoint.Target{Address: "x:99999"}, endpoint.Target{}, "bad port"},
		{endpoint.Target{Address: "x", Protocol: "ldap"}, endpoint.Target{}, `unknown endpoint protocol "ldap"`},
		{endpoint.Target{Address: "x", Timeout: -1}, endpoint.Target{}, "negative timeout"},
		{endpoint.Target{Address: "x", KeyFamily: "ed25519"}, endpoint.Target{}, `unknown key family "ed25519"`},
	} {
		t.Run(tc.in.Address+"/"+string(tc.in.Protocol), func(t *testing.T) {
			got, err := tc.in.Normalize()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Address != tc.want.Address || got.ServerName != tc.want.ServerName || got.Protocol != tc.want.Protocol {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestCheckDualCertificate: a server holding an ECDSA and an RSA certificate
// (a dual certificate) shows each when asked for its key family, and one
// without an RSA certificate fails the RSA check at the handshake.
func TestCheckDualCertificate(t *testing.T) {
	ca := newTestCA(t, "test")
	names := []string{"dual.example.test"}
	now := time.Now()
	ec := ca.issue(t, names, now.Add(-time.Minute), now.Add(time.Hour), false)
	rsa := ca.issue(t, names, now.Add(-time.Minute), now.Add(time.Hour), true)
	dual := newServer(t, func(s *server, c net.Conn) {
		s.serveTLS(c, &tls.Config{Certificates: []tls.Certificate{ec.tls, rsa.tls}})
	})
	ecOnly := newTLSServer(t, ec.tls)
	want := endpoint.Expectation{Current: []certfleet.Issuance{ec.iss, rsa.iss}}
	c := &endpoint.Checker{Roots: ca.roots}
	for _, tc := range []struct {
		family string
		want   leaf
	}{{"", ec}, {"ecdsa", ec}, {"rsa", rsa}} {
		t.Run("family "+tc.family, func(t *testing.T) {
			res, err := c.Check(t.Context(), endpoint.Target{Address: dual.Addr(), ServerName: names[0], KeyFamily: tc.family})
			if err != nil {
				t.Fatal(err)
			}
			if res.Fingerprint != tc.want.iss.Fingerprint || !res.ChainVerified {
				t.Errorf("served %s (%s) verified %v, want the %s certificate %s", res.Serial, res.Leaf.PublicKeyAlgorithm, res.ChainVerified, tc.want.iss.KeyType, tc.want.iss.Serial)
			}
			if v := endpoint.Compare(res, want, now); v.Status != endpoint.StatusOK || v.ServedIssuance != tc.want.iss.ID {
				t.Errorf("verdict %s issuance %d, want ok %d: %s", v.Status, v.ServedIssuance, tc.want.iss.ID, v.Message)
			}
		})
	}
	_, err := c.Check(t.Context(), endpoint.Target{Address: ecOnly.Addr(), ServerName: names[0], KeyFamily: "rsa"})
	var e *endpoint.Error
	if !errors.As(err, &e) || e.Step != endpoint.StepHandshake || !strings.Contains(err.Error(), "RSA key") {
		t.Errorf("RSA check of an ECDSA-only server: %v, want a handshake error naming RSA", err)
	}
}

// BenchmarkCheck measures one check on loopback, per protocol.
func BenchmarkCheck(b *testing.B) {
	for _, proto := range []endpoint.Protocol{endpoint.ProtocolTLS, endpoint.ProtocolSMTP} {
		b.Run(string(proto), func(b *testing.B) {
			f := newFixture(b)
			var srv *server
			if proto == endpoint.ProtocolSMTP {
				srv = newScriptServer(b, f.new.tls, true, smtpSteps...)
			} else {
				srv = newTLSServer(b, f.new.tls)
			}
			c := f.checker()
			target := endpoint.Target{Address: srv.Addr(), ServerName: "example.test", Protocol: proto}
			for b.Loop() {
				if _, err := c.Check(b.Context(), target); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
