package endpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Bounds on what a server may send before TLS starts (ours, not any RFC's).
// RFC 5321 §4.5.3.1.5 limits an SMTP reply line to 512 octets; IMAP and POP3
// greetings with capability lists run longer but never near 4 KiB. A reply
// of more than maxReplyLines lines (an EHLO response lists a dozen keywords)
// is an attack or a bug. Together they cap a reply at 512 KiB, and the
// check's timeout caps the time.
const (
	maxLine       = 4096
	maxReplyLines = 128
)

var (
	errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLine)
	errTooManyLine = fmt.Errorf("reply longer than %d lines", maxReplyLines)
)

// lineReader reads CRLF- (or LF-) terminated lines of at most maxLine bytes.
// net/textproto would fit the SMTP parsing, but it reads lines of any length.
type lineReader struct {
	br *bufio.Reader
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, maxLine)}
}

// readLine returns the next line without its line ending.
func (l *lineReader) readLine() (string, error) {
	b, err := l.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", errLineTooLong
	case errors.Is(err, io.EOF):
		if len(b) > 0 {
			return "", fmt.Errorf("connection closed in the middle of a line %q", truncate(string(b)))
		}
		return "", errors.New("connection closed by the server")
	case err != nil:
		return "", err
	}
	s := strings.TrimSuffix(string(b[:len(b)-1]), "\r")
	return s, nil
}

// buffered is how many bytes were received but not read yet.
func (l *lineReader) buffered() int { return l.br.Buffered() }

func truncate(s string) string {
	if len(s) > maxQuote {
		return s[:maxQuote] + "…"
	}
	return s
}

// smtpReply is one SMTP reply: its code and the text of each line.
type smtpReply struct {
	Code  int
	Lines []string // text after "NNN-" or "NNN ", one per line
	Raw   []string // the lines as received, for quoting
}

// String returns the reply as received, for quoting in errors; a reply of
// more than quoteLines lines is cut.
func (r smtpReply) String() string {
	const quoteLines = 6
	if len(r.Raw) > quoteLines {
		return strings.Join(r.Raw[:quoteLines-1], "\n") + fmt.Sprintf("\n… %d more lines", len(r.Raw)-quoteLines+1)
	}
	return strings.Join(r.Raw, "\n")
}

// parseSMTPLine parses one reply line. RFC 5321 §4.2:
//
//	Reply-line = *( Reply-code "-" [ textstring ] CRLF )
//	             Reply-code [ SP textstring ] CRLF
//	Reply-code = %x32-35 %x30-35 %x30-39
//
// more is true for a "-" line (the reply continues).
func parseSMTPLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", fmt.Errorf("not an SMTP reply: %q", truncate(line))
	}
	c0, c1, c2 := line[0], line[1], line[2]
	if c0 < '2' || c0 > '5' || c1 < '0' || c1 > '5' || c2 < '0' || c2 > '9' {
		return 0, false, "", fmt.Errorf("not an SMTP reply code: %q", truncate(line))
	}
	code = int(c0-'0')*100 + int(c1-'0')*10 + int(c2-'0')
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case ' ':
		return code, false, line[4:], nil
	case '-':
		return code, true, line[4:], nil
	}
	return 0, false, "", fmt.Errorf("not an SMTP reply: %q", truncate(line))
}

// readSMTPReply reads one (possibly multi-line) reply. RFC 5321 §4.2.1: a
// multiline reply has "the same reply code on each line".
func readSMTPReply(lr *lineReader) (smtpReply, error) {
	var r smtpReply
	for i := 0; ; i++ {
		if i == maxReplyLines {
			return r, errTooManyLine
		}
		line, err := lr.readLine()
		if err != nil {
			return r, err
		}
		code, more, text, err := parseSMTPLine(line)
		if err != nil {
			return r, err
		}
		if i > 0 && code != r.Code {
			return r, fmt.Errorf("reply code changed from %d to %d within one reply", r.Code, code)
		}
		r.Code = code
		r.Lines = append(r.Lines, text)
		r.Raw = append(r.Raw, line)
		if !more {
			return r, nil
		}
	}
}

// ehloHasKeyword reports whether an EHLO reply lists keyword. RFC 5321
// §4.1.1.1: the first line is the server's domain, each further line
// "ehlo-keyword *( SP ehlo-param )"; keywords are case-insensitive.
func ehloHasKeyword(r smtpReply, keyword string) bool {
	for _, l := range r.Lines[min(1, len(r.Lines)):] {
		kw, _, _ := strings.Cut(l, " ")
		if strings.EqualFold(kw, keyword) {
			return true
		}
	}
	return false
}

// imapLine is one IMAP response line, split into tag, status and text.
type imapLine struct {
	Tag    string // "*" for untagged, "+" for a continuation request
	Status string // "OK", "NO", "BAD", "PREAUTH", "BYE", or another word, upper-cased
	Text   string
}

// parseIMAPLine parses a response line. RFC 3501 §7.1 (and RFC 9051 §7.1):
// "Status responses are OK, NO, BAD, PREAUTH and BYE. OK, NO, and BAD can be
// tagged or untagged. PREAUTH and BYE are always untagged." A continuation
// request starts with "+".
func parseIMAPLine(line string) (imapLine, error) {
	tag, rest, ok := strings.Cut(line, " ")
	if tag == "+" {
		return imapLine{Tag: "+", Text: rest}, nil
	}
	if !ok || tag == "" || strings.ContainsAny(tag, "(){%\"\\]") {
		return imapLine{}, fmt.Errorf("not an IMAP response: %q", truncate(line))
	}
	status, text, _ := strings.Cut(rest, " ")
	if status == "" {
		return imapLine{}, fmt.Errorf("not an IMAP response: %q", truncate(line))
	}
	return imapLine{Tag: tag, Status: asciiUpper(status), Text: text}, nil
}

// asciiUpper upper-cases ASCII letters only: protocol keywords are ASCII, and
// Unicode case mapping would turn "ı" into "I".
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// parsePOP3Line parses a status line. RFC 1939 §3: "Responses in the POP3
// consist of a status indicator and a keyword possibly followed by additional
// information … There are currently two status indicators: positive ("+OK")
// and negative ("-ERR")."
func parsePOP3Line(line string) (ok bool, text string, err error) {
	ind, text, _ := strings.Cut(line, " ")
	switch asciiUpper(ind) {
	case "+OK":
		return true, text, nil
	case "-ERR":
		return false, text, nil
	}
	return false, "", fmt.Errorf("not a POP3 response: %q", truncate(line))
}
