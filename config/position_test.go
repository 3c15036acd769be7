package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestScanPositions(t *testing.T) {
	src := `# [not.a.table] = "comment"
top = "a # not a comment"  # comment [x]
multi = """
line with ] and "quotes" and ''' and \"""
"""
after = 1
lit = '''
'quoted' [x]
''''
"quoted key" = { inner = [1, 2], "x.y" = 'v' }
dotted.key.path = true
date = 1979-05-27 07:32:00Z

[ca]
directory = "letsencrypt"

[accounts.'cust omer']
email = "a@example.org"

[[certificate]]
identifiers = [
  "a.example",  # first
  # a comment line
  "b.example",
]
commands = [["a", "b"], [
  "c",
]]

[[certificate]]
identifiers = ["c.example"]

[[certificate.sub]]
x = 1
[certificate.tbl]
y = 2

[[certificate]]
name = "third"
`
	pos := scanPositions(src)
	if crlf := scanPositions("\uFEFF" + strings.ReplaceAll(src, "\n", "\r\n")); !reflect.DeepEqual(crlf, pos) {
		t.Errorf("positions with a BOM and CRLF line ends differ:\n%s\nwant\n%s", crlf.debugString(), pos.debugString())
	}
	for p, want := range map[string]int{
		"top":                           2,
		"multi":                         3,
		"after":                         6,
		"lit":                           7,
		`"quoted key"`:                  10,
		`"quoted key".inner`:            10,
		`"quoted key".inner[1]`:         10,
		`"quoted key"."x.y"`:            10,
		"dotted":                        11,
		"dotted.key.path":               11,
		"date":                          12,
		"ca":                            14,
		"ca.directory":                  15,
		"accounts":                      17,
		`accounts."cust omer"`:          17,
		`accounts."cust omer".email`:    18,
		"certificate":                   20,
		"certificate[0]":                20,
		"certificate[0].identifiers":    21,
		"certificate[0].identifiers[0]": 22,
		"certificate[0].identifiers[1]": 24,
		"certificate[0].commands[0]":    26,
		"certificate[0].commands[0][1]": 26,
		"certificate[0].commands[1]":    26,
		"certificate[0].commands[1][0]": 27,
		"certificate[1]":                30,
		"certificate[1].identifiers[0]": 31,
		"certificate[1].sub[0].x":       34,
		"certificate[1].tbl.y":          36,
		"certificate[2]":                38,
		"certificate[2].name":           39,
	} {
		if got := pos[p]; got != want {
			t.Errorf("line of %s = %d, want %d", p, got, want)
		}
	}
	if t.Failed() {
		t.Logf("positions:\n%s", pos.debugString())
	}
	if _, ok := pos["not"]; ok {
		t.Errorf("a comment was scanned as a table")
	}

	// A missing key falls back to its nearest ancestor.
	if got := pos.line(path{"certificate", "[2]", "identifiers", "[4]"}); got != 38 {
		t.Errorf("fallback line = %d, want 38", got)
	}
	if got := pos.line(path{"nothing"}); got != 0 {
		t.Errorf("unknown path line = %d, want 0", got)
	}
}

func TestPathString(t *testing.T) {
	for _, tc := range []struct {
		p    path
		want string
	}{
		{nil, ""},
		{path{}.key("certificate").index(2).key("identifiers").index(1), "certificate[2].identifiers[1]"},
		{path{}.key("accounts").key("a b").key("email"), `accounts."a b".email`},
		{path{}.key("").key("x.y"), `""."x.y"`},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("path %q String() = %q, want %q", []string(tc.p), got, tc.want)
		}
	}
}
