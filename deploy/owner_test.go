package deploy_test

import (
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/certfleet/certfleet/deploy"
)

// chownHelperEnv makes the test binary, re-run as an unprivileged user,
// write one file for TestGroupNotMemberNamesGroupAndFix.
const chownHelperEnv = "CERTFLEET_TEST_CHOWN_HELPER"

// TestGroupNotMemberNamesGroupAndFix is issue 17's finding: an agent whose
// user is not in the configured group failed with a bare "chown …:
// operation not permitted". The error must name the group, the user and
// the fix. Run as root, the test re-runs itself as nobody (not a member of
// www-data), since root may chown anything.
func TestGroupNotMemberNamesGroupAndFix(t *testing.T) {
	if dir := os.Getenv(chownHelperEnv); dir != "" {
		_, err := deploy.WriteFileAtomic(filepath.Join(dir, "out", "key.pem"), []byte("data"), 0o640, "", "www-data")
		if err == nil {
			os.Stdout.WriteString("OK")
		} else {
			os.Stdout.WriteString(err.Error())
		}
		return
	}
	g, err := user.LookupGroup("www-data")
	if err != nil {
		t.Skipf("no www-data group here: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// A copy of the test binary nobody can run, in a directory nobody
	// may write to.
	dir, err := os.MkdirTemp("", "certfleet-chown-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "deploy.test")
	copyFile(t, os.Args[0], bin)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(work, uid, gid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestGroupNotMemberNamesGroupAndFix$")
	cmd.Env = append(os.Environ(), chownHelperEnv+"="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{`group "www-data"`, `user "nobody"`, "usermod -aG www-data nobody", "restart"} {
		if !strings.Contains(got, want) {
			t.Errorf("error as a non-member of %s (gid %s):\n%s\nwant it to contain %q", g.Name, g.Gid, got, want)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
