package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The TOML library keeps the position of every key to itself, so a problem
// found after decoding (an invalid identifier, an unknown key) could not name
// its line. scanPositions recovers them with a small scanner over the same
// source. It runs only on documents the TOML parser accepted, but it must not
// panic or loop on anything, so it also gives up quietly on input it does not
// understand: a missing position only costs a line number.

// path is a field's location in the document, one rendered segment per
// element: a key ("certificate", `"my key"`) or an index ("[2]").
type path []string

func (p path) key(k string) path { return append(slices.Clip(p), quoteKey(k)) }
func (p path) index(i int) path  { return append(slices.Clip(p), "["+strconv.Itoa(i)+"]") }

// String renders the path as certificate[2].identifiers[1].
func (p path) String() string {
	var b strings.Builder
	for i, seg := range p {
		if i > 0 && !strings.HasPrefix(seg, "[") {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// quoteKey renders a key the way TOML would need it written: bare when it
// can be, quoted otherwise.
func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyChar(k[i]) {
			return strconv.Quote(k)
		}
	}
	return k
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// positions maps a rendered path to the 1-based line where it first appears.
type positions map[string]int

// line returns the line of p, or of its nearest ancestor with a known
// position (a missing key is reported at its table's header), or 0.
func (pos positions) line(p path) int {
	for n := len(p); n > 0; n-- {
		if l, ok := pos[p[:n].String()]; ok {
			return l
		}
	}
	return 0
}

type scanner struct {
	src    string
	i      int
	line   int
	pos    positions
	arrays map[string]int // rendered path of an array of tables → elements so far
}

// scanPositions returns the line of every key, table header, array-of-tables
// element and array element in src.
func scanPositions(src string) positions {
	src = strings.TrimPrefix(src, "\uFEFF")
	s := &scanner{src: src, line: 1, pos: make(positions), arrays: make(map[string]int)}
	s.document()
	return s.pos
}

func (s *scanner) record(p path, line int) {
	k := p.String()
	if _, ok := s.pos[k]; !ok {
		s.pos[k] = line
	}
}

func (s *scanner) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

// advance moves forward n bytes, counting newlines.
func (s *scanner) advance(n int) {
	for ; n > 0 && s.i < len(s.src); n-- {
		if s.src[s.i] == '\n' {
			s.line++
		}
		s.i++
	}
}

func (s *scanner) skipSpace() {
	for !s.eof() && (s.src[s.i] == ' ' || s.src[s.i] == '\t') {
		s.i++
	}
}

// skipBlank skips whitespace, newlines and comments.
func (s *scanner) skipBlank() {
	for !s.eof() {
		switch s.src[s.i] {
		case ' ', '\t', '\r', '\n':
			s.advance(1)
		case '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine moves to the next newline (not past it).
func (s *scanner) skipLine() {
	for !s.eof() && s.src[s.i] != '\n' {
		s.i++
	}
}

func (s *scanner) document() {
	var table path
	for !s.eof() {
		start := s.i
		s.skipBlank()
		if s.eof() {
			return
		}
		line := s.line
		if s.src[s.i] == '[' {
			array := s.peek(1) == '['
			if array {
				s.i += 2
			} else {
				s.i++
			}
			parts := s.keyParts()
			table = s.header(parts, array, line)
			s.skipLine()
		} else {
			parts := s.keyParts()
			s.skipSpace()
			if len(parts) == 0 || s.peek(0) != '=' {
				s.skipLine()
			} else {
				s.i++
				p := s.dotted(table, parts, line)
				s.skipSpace()
				s.value(p)
				s.skipLine()
			}
		}
		if s.i == start {
			s.advance(1)
		}
	}
}

// header resolves a table header: parents that are arrays of tables refer
// to their last element, and [[x]] opens a new element of x.
func (s *scanner) header(parts []string, array bool, line int) path {
	var p path
	for j, part := range parts {
		p = p.key(part)
		if j == len(parts)-1 && array {
			n := s.arrays[p.String()]
			s.arrays[p.String()] = n + 1
			s.record(p, line)
			p = p.index(n)
		} else if n, ok := s.arrays[p.String()]; ok && n > 0 {
			p = p.index(n - 1)
		}
		s.record(p, line)
	}
	return p
}

func (s *scanner) dotted(base path, parts []string, line int) path {
	p := base
	for _, part := range parts {
		p = p.key(part)
		s.record(p, line)
	}
	return p
}

// keyParts reads a possibly dotted key.
func (s *scanner) keyParts() []string {
	var parts []string
	for {
		s.skipSpace()
		if s.eof() {
			return parts
		}
		switch c := s.src[s.i]; {
		case c == '"':
			parts = append(parts, unescapeBasic(s.basicString()))
		case c == '\'':
			parts = append(parts, strings.Trim(s.literalString(), "'"))
		case isBareKeyChar(c):
			start := s.i
			for !s.eof() && isBareKeyChar(s.src[s.i]) {
				s.i++
			}
			parts = append(parts, s.src[start:s.i])
		default:
			return parts
		}
		s.skipSpace()
		if s.peek(0) != '.' {
			return parts
		}
		s.i++
	}
}

// value skips one value, recording the positions of what it contains.
func (s *scanner) value(p path) {
	if s.eof() {
		return
	}
	switch s.src[s.i] {
	case '"':
		if strings.HasPrefix(s.src[s.i:], `"""`) {
			s.multiline(`"""`, true)
		} else {
			s.basicString()
		}
	case '\'':
		if strings.HasPrefix(s.src[s.i:], `'''`) {
			s.multiline(`'''`, false)
		} else {
			s.literalString()
		}
	case '[':
		s.array(p)
	case '{':
		s.inlineTable(p)
	default:
		for !s.eof() && !strings.ContainsRune(",]}#\r\n", rune(s.src[s.i])) {
			s.i++
		}
	}
}

func (s *scanner) array(p path) {
	s.i++ // [
	for n := 0; ; n++ {
		s.skipBlank()
		if s.eof() {
			return
		}
		if s.src[s.i] == ']' {
			s.i++
			return
		}
		start := s.i
		elem := p.index(n)
		s.record(elem, s.line)
		s.value(elem)
		s.skipBlank()
		if s.peek(0) == ',' {
			s.i++
		} else if s.peek(0) != ']' || s.i == start {
			return
		}
	}
}

func (s *scanner) inlineTable(p path) {
	s.i++ // {
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		if s.src[s.i] == '}' {
			s.i++
			return
		}
		line := s.line
		parts := s.keyParts()
		s.skipSpace()
		if len(parts) == 0 || s.peek(0) != '=' {
			return
		}
		s.i++
		s.skipSpace()
		s.value(s.dotted(p, parts, line))
		s.skipBlank()
		if s.peek(0) == ',' {
			s.i++
		} else if s.peek(0) != '}' {
			return
		}
	}
}

// basicString reads a one-line "..." string and returns it with its quotes.
func (s *scanner) basicString() string {
	start := s.i
	s.i++
	for !s.eof() {
		switch s.src[s.i] {
		case '\\':
			s.i += 2
			continue
		case '"':
			s.i++
			return s.src[start:min(s.i, len(s.src))]
		case '\n':
			return s.src[start:s.i]
		}
		s.i++
	}
	return s.src[start:min(s.i, len(s.src))]
}

// unescapeBasic returns the value of a quoted basic string, with TOML's
// escapes (TOML 1.1 adds \e and \xHH to Go's set). Malformed escapes are
// kept as written: the parser has rejected them already.
func unescapeBasic(q string) string {
	q = strings.TrimPrefix(q, `"`)
	q = strings.TrimSuffix(q, `"`)
	if !strings.Contains(q, `\`) {
		return q
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] != '\\' || i+1 >= len(q) {
			b.WriteByte(q[i])
			continue
		}
		i++
		switch c := q[i]; c {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"', '\\':
			b.WriteByte(c)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
			if i+1+n <= len(q) {
				if r, err := strconv.ParseUint(q[i+1:i+1+n], 16, 32); err == nil {
					b.WriteRune(rune(r))
					i += n
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String()
}

// literalString reads a one-line '...' string and returns it with its quotes.
func (s *scanner) literalString() string {
	start := s.i
	s.i++
	for !s.eof() {
		switch s.src[s.i] {
		case '\'':
			s.i++
			return s.src[start:s.i]
		case '\n':
			return s.src[start:s.i]
		}
		s.i++
	}
	return s.src[start:]
}

// multiline skips a multi-line basic or literal string. Up to two quotes may
// directly precede the closing delimiter (TOML 1.0 §String).
func (s *scanner) multiline(delim string, escapes bool) {
	s.i += 3
	for !s.eof() {
		if escapes && s.src[s.i] == '\\' {
			s.advance(2)
			continue
		}
		if strings.HasPrefix(s.src[s.i:], delim) {
			s.i += 3
			for extra := 0; extra < 2 && s.peek(0) == delim[0]; extra++ {
				s.i++
			}
			return
		}
		s.advance(1)
	}
}

// debugString lists the positions, for test failure messages.
func (pos positions) debugString() string {
	keys := make([]string, 0, len(pos))
	for k := range pos {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%d\t%s\n", pos[k], k)
	}
	return b.String()
}
