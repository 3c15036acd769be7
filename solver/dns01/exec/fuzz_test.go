package exec

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzTail: whatever a hook prints, the quoted tail is one line of valid,
// printable UTF-8 of bounded length, and keeps the last word when short.
func FuzzTail(f *testing.F) {
	f.Add([]byte("error: zone not found\n"), 64)
	f.Add([]byte("\xff\xfe\x00\x1b[31mred\x1b[0m\r\n"), 8)
	f.Add([]byte(strings.Repeat("é", 600)), 1024)
	f.Fuzz(func(t *testing.T, out []byte, n int) {
		if n < 1 || n > 4096 {
			return
		}
		s := Tail(out, n)
		if !utf8.ValidString(s) {
			t.Fatalf("Tail = %q: invalid UTF-8", s)
		}
		for _, r := range s {
			if r == '\n' || r == '\r' || (!unicode.IsPrint(r) && r != ' ') {
				t.Fatalf("Tail = %q: contains %q", s, r)
			}
		}
		// Each input byte yields at most one rune of at most 3 bytes
		// ('?' or the rune itself), plus the "…" marker.
		if len(s) > 4*n+len("…") {
			t.Fatalf("Tail(%d bytes, %d) is %d bytes", len(out), n, len(s))
		}
		if utf8.Valid(out) && len(out) <= n {
			fields := strings.Fields(string(out))
			if len(fields) > 0 {
				last := fields[len(fields)-1]
				printable := true
				for _, r := range last {
					printable = printable && unicode.IsPrint(r)
				}
				if printable && !strings.HasSuffix(s, last) {
					t.Fatalf("Tail(%q) = %q lost the last word", out, s)
				}
			}
		}
	})
}
