package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error reports every problem found in a configuration file. Parse returns it
// (as *Error) for syntax errors and for every failed check, so an operator
// sees all mistakes at once instead of fixing them one run at a time.
type Error struct {
	Problems []Problem
}

// Problem is one mistake in a configuration file.
type Problem struct {
	// File is the file name as given to Parse or Load.
	File string
	// Line is the 1-based line of the offending key or value; 0 when it is
	// not known (a required key that is missing and whose table is implicit).
	Line int
	// Column is the 1-based column, set for syntax errors only.
	Column int
	// Field is the key's path in the document, as in
	// certificate[2].identifiers[1] (array indexes count from 0); "" for
	// syntax errors.
	Field string
	// Message says what is wrong and, where it helps, how to fix it. It
	// never contains the value of a secret (eab_hmac_key).
	Message string
}

// String formats the problem as FILE:LINE[:COLUMN]: FIELD: MESSAGE, leaving
// out the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error prints one line per problem.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by line, those without a line last, keeping
// the order of discovery otherwise.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
}
