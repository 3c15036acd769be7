package webroot_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/webroot"
)

const (
	testToken   = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
	testKeyAuth = testToken + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
)

func testChallenge(token string) certfleet.Challenge {
	return certfleet.Challenge{
		Type:             certfleet.ChallengeHTTP01,
		Identifier:       certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "example.org"},
		Token:            token,
		KeyAuthorization: testKeyAuth,
	}
}

func mustGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestPresentServedByFileServer(t *testing.T) {
	// A restrictive umask must not leak into the files the web server
	// (another user) reads.
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	url := srv.URL + "/.well-known/acme-challenge/" + testToken

	s := &webroot.Solver{Dir: dir}
	chal := testChallenge(testToken)
	if err := s.Present(t.Context(), chal); err != nil {
		t.Fatalf("Present: %v", err)
	}
	if code, body := mustGet(t, url); code != http.StatusOK || body != testKeyAuth {
		t.Fatalf("GET: got %d %q, want 200 %q", code, body, testKeyAuth)
	}
	path := filepath.Join(dir, webroot.ChallengeDir, testToken)
	for p, want := range map[string]os.FileMode{
		path:                              webroot.DefaultMode,
		filepath.Dir(path):                webroot.DefaultDirMode,
		filepath.Join(dir, ".well-known"): webroot.DefaultDirMode,
	} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
	// Present again (a retried challenge) replaces the file.
	if err := s.Present(t.Context(), chal); err != nil {
		t.Fatalf("second Present: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("challenge dir holds %d entries, want 1 (no temp files left)", len(entries))
	}

	if err := s.CleanUp(t.Context(), chal); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
	if code, _ := mustGet(t, url); code != http.StatusNotFound {
		t.Fatalf("GET after CleanUp: status %d, want 404", code)
	}
	if err := s.CleanUp(t.Context(), chal); err != nil {
		t.Fatalf("second CleanUp (missing file): %v", err)
	}
}

func TestCustomModes(t *testing.T) {
	dir := t.TempDir()
	s := &webroot.Solver{Dir: dir, Mode: 0o640, DirMode: 0o750}
	if err := s.Present(t.Context(), testChallenge(testToken)); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		filepath.Join(dir, webroot.ChallengeDir, testToken): 0o640,
		filepath.Join(dir, webroot.ChallengeDir):            0o750,
	} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
}

func TestRejects(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "www")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    webroot.Solver
		chal certfleet.Challenge
		code string
	}{
		{name: "traversal", s: webroot.Solver{Dir: dir}, chal: testChallenge("../../../pwned"), code: certfleet.EINVALID},
		{name: "dot dot", s: webroot.Solver{Dir: dir}, chal: testChallenge(".."), code: certfleet.EINVALID},
		{name: "slash", s: webroot.Solver{Dir: dir}, chal: testChallenge("a/b"), code: certfleet.EINVALID},
		{name: "empty token", s: webroot.Solver{Dir: dir}, chal: testChallenge(""), code: certfleet.EINVALID},
		{name: "no dir", s: webroot.Solver{}, chal: testChallenge(testToken), code: certfleet.EINVALID},
		{name: "wrong type", s: webroot.Solver{Dir: dir}, chal: func() certfleet.Challenge {
			c := testChallenge(testToken)
			c.Type = certfleet.ChallengeTLSALPN01
			return c
		}(), code: certfleet.EINVALID},
		{name: "missing web root", s: webroot.Solver{Dir: filepath.Join(root, "typo")}, chal: testChallenge(testToken), code: certfleet.EINTERNAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Present(t.Context(), tc.chal)
			if err == nil {
				t.Fatal("Present succeeded, want error")
			}
			if got := certfleet.ErrorCode(err); got != tc.code {
				t.Errorf("code %q (%v), want %q", got, err, tc.code)
			}
		})
	}
	// Nothing was written anywhere under root but the empty web root.
	var found []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if p != root && p != dir {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 0 {
		t.Errorf("files created by rejected challenges: %v", found)
	}
}
