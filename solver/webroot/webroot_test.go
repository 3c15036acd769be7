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

// TestPlantedSymlinkNotFollowed is issue 17's finding: whoever owns the web
// root plants a symbolic link at .well-known (or at acme-challenge) that
// points out of it; the solver must neither write, chmod nor remove where
// it points.
func TestPlantedSymlinkNotFollowed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, root, outside string)
	}{
		{"well-known absolute", func(t *testing.T, root, outside string) {
			mustSymlink(t, outside, filepath.Join(root, ".well-known"))
		}},
		{"well-known relative", func(t *testing.T, root, outside string) {
			rel, err := filepath.Rel(root, outside)
			if err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, rel, filepath.Join(root, ".well-known"))
		}},
		{"acme-challenge", func(t *testing.T, root, outside string) {
			if err := os.Mkdir(filepath.Join(root, ".well-known"), 0o755); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, outside, filepath.Join(root, ".well-known", "acme-challenge"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "www")
			outside := filepath.Join(base, "elsewhere")
			for _, d := range []string{root, outside, filepath.Join(outside, "acme-challenge")} {
				if err := os.Mkdir(d, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			// A file where the link would make the token land.
			victim := filepath.Join(outside, "acme-challenge", testToken)
			if tc.name == "acme-challenge" {
				victim = filepath.Join(outside, testToken)
			}
			if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadDir(filepath.Dir(victim))
			tc.plant(t, root, outside)

			s := &webroot.Solver{Dir: root}
			err := s.Present(t.Context(), testChallenge(testToken))
			if certfleet.ErrorCode(err) != certfleet.EINVALID {
				t.Fatalf("Present through a link out of the web root: err = %v, want EINVALID", err)
			}
			if err := s.CleanUp(t.Context(), testChallenge(testToken)); certfleet.ErrorCode(err) != certfleet.EINVALID {
				t.Fatalf("CleanUp through a link out of the web root: err = %v, want EINVALID", err)
			}
			got, err := os.ReadFile(victim)
			if err != nil || string(got) != "precious" {
				t.Fatalf("file outside the web root: %q, %v; want it untouched", got, err)
			}
			ents, _ := os.ReadDir(filepath.Dir(victim))
			if len(ents) != len(before) {
				t.Errorf("outside directory holds %d entries, want the %d it had", len(ents), len(before))
			}
			if st, _ := os.Stat(filepath.Dir(victim)); st.Mode().Perm() != 0o700 {
				t.Errorf("outside directory mode %v, want 0700 unchanged", st.Mode().Perm())
			}
		})
	}
}

// TestSymlinkInsideRootFollowed: a link that stays inside the web root (an
// operator sharing one .well-known between sites below it) keeps working.
func TestSymlinkInsideRootFollowed(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, "shared", filepath.Join(root, ".well-known"))
	s := &webroot.Solver{Dir: root}
	if err := s.Present(t.Context(), testChallenge(testToken)); err != nil {
		t.Fatalf("Present: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(root, "shared", "acme-challenge", testToken))
	if err != nil || string(got) != testKeyAuth {
		t.Fatalf("token file = %q, %v", got, err)
	}
	if err := s.CleanUp(t.Context(), testChallenge(testToken)); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
