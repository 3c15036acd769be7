package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryCommandHasHelp: each help("NAME") in the code has its
// help/NAME.txt, and each file there is used by some command.
func TestEveryCommandHasHelp(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`help\("([^"]+)"\)`)
	used := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			used[strings.ReplaceAll(m[1], " ", "-")+".txt"] = true
			if h := help(m[1]); strings.HasPrefix(h, "(no description") || strings.TrimSpace(h) == "" {
				t.Errorf("%s: help(%q) has no text: %s", f, m[1], h)
			}
		}
	}
	if len(used) == 0 {
		t.Fatal("found no help(...) calls: the test's pattern no longer matches the code")
	}
	entries, err := fs.ReadDir(helpTexts, "help")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !used[e.Name()] {
			t.Errorf("help/%s is used by no command", e.Name())
		}
	}
}
