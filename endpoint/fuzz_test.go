package endpoint

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzSMTPReply: any bytes give a bounded reply or an error, never a panic;
// a reply that parses has one code, shared by every line, and lines within
// the limits.
func FuzzSMTPReply(f *testing.F) {
	for _, s := range []string{
		"220 mx.example.org ESMTP\r\n",
		"220-mx.example.org ESMTP\r\n220-second\r\n220 last\r\n",
		"250-mx\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
		"454 4.7.0 TLS not available\r\n",
		"220\r\n", "220-\n220 x\n", "220-a\r\n250 b\r\n", "600 no\r\n", "22\r\n", "220x\r\n",
		strings.Repeat("A", maxLine+10), strings.Repeat("220-x\r\n", maxReplyLines+1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := readSMTPReply(newLineReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		if r.Code < 200 || r.Code > 559 {
			t.Fatalf("code %d outside 200..559", r.Code)
		}
		if len(r.Lines) == 0 || len(r.Lines) != len(r.Raw) || len(r.Lines) > maxReplyLines {
			t.Fatalf("%d lines, %d raw", len(r.Lines), len(r.Raw))
		}
		code := strconv.Itoa(r.Code)
		for i, raw := range r.Raw {
			if len(raw) >= maxLine || !strings.HasPrefix(raw, code) {
				t.Fatalf("line %d %q: too long or not starting with %s", i, raw, code)
			}
			last := i == len(r.Raw)-1
			if len(raw) > 3 && (raw[3] == '-') == last {
				t.Fatalf("line %d %q: continuation marker wrong for position (last=%v)", i, raw, last)
			}
			if len(raw) > 3 && raw[4:] != r.Lines[i] {
				t.Fatalf("line %d text %q, raw %q", i, r.Lines[i], raw)
			}
		}
		if s := r.String(); len(s) > 6*maxLine+50 {
			t.Fatalf("quoted reply of %d bytes", len(s))
		}
	})
}

// FuzzIMAPLine: parsing never panics and a parsed line reassembles.
func FuzzIMAPLine(f *testing.F) {
	for _, s := range []string{"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready", "a1 OK Begin TLS", "a1 bad no",
		"* PREAUTH x", "* BYE", "+ go on", "+", "", " ", "a1", "a1 ", "(x OK"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, err := parseIMAPLine(line)
		if err != nil {
			return
		}
		if l.Tag == "+" {
			return
		}
		if l.Tag == "" || l.Status == "" || l.Status != asciiUpper(l.Status) {
			t.Fatalf("%q: parsed %+v", line, l)
		}
		re := l.Tag + " " + l.Status
		if l.Text != "" || strings.Count(line, " ") > 1 {
			re += " " + l.Text
		}
		if !strings.EqualFold(re, line) {
			t.Fatalf("%q reassembles as %q", line, re)
		}
	})
}

// FuzzPOP3Line: parsing never panics; only +OK and -ERR lines parse.
func FuzzPOP3Line(f *testing.F) {
	for _, s := range []string{"+OK ready", "-ERR no", "+OK", "+ok x", "+OKAY", "", "-ERRx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ok, text, err := parsePOP3Line(line)
		if err != nil {
			return
		}
		ind, _, _ := strings.Cut(line, " ")
		if ok != (asciiUpper(ind) == "+OK") || (!ok && asciiUpper(ind) != "-ERR") {
			t.Fatalf("%q: ok=%v", line, ok)
		}
		if !strings.HasSuffix(line, text) {
			t.Fatalf("%q: text %q", line, text)
		}
	})
}

// FuzzUpgrade plays a hostile server: whatever it sends, the plaintext part
// of each protocol returns (an error, or nil to start TLS) without hanging,
// and an error is an *Error with a bounded quote.
func FuzzUpgrade(f *testing.F) {
	for _, s := range []string{
		"220 hi\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n",
		"* OK hi\r\na1 OK go\r\n", "+OK hi\r\n+OK go\r\n", "S", "N", "E",
		"220 hi\r\n250 x\r\n", "220 go\r\n250-x\r\n250 STARTTLS\r\n220 go\r\nEXTRA",
	} {
		for p := range Protocols {
			f.Add(uint8(p), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, p uint8, data []byte) {
		proto := Protocols[int(p)%len(Protocols)]
		client, srv := net.Pipe()
		defer client.Close()
		go func() {
			go io.Copy(io.Discard, srv)
			srv.Write(data)
			srv.Close()
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		tgt := Target{Address: "fuzz:1", Protocol: proto}
		err := (&Checker{}).upgrade(context.Background(), client, tgt)
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v (%T) is not an *Error", err, err)
		}
		if len(e.Reply) > maxQuote+len("…") {
			t.Fatalf("quoted reply of %d bytes", len(e.Reply))
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("upgrade hung until the deadline: %v", err)
		}
	})
}
