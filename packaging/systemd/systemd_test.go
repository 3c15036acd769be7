package systemd_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/packaging/systemd"
)

// TestUnitsVerify runs systemd-analyze verify on the shipped units (issue
// 16: no units shipped), with ExecStart pointing at an executable that
// exists here. Install systemd-analyze with Debian's systemd package.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze not found: apt-get install systemd")
		}
		t.Skip("systemd-analyze not found (apt-get install systemd)")
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var units []string
	entries, err := fs.ReadDir(systemd.Units, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(systemd.Units, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(e.Name(), ".service") && !strings.HasSuffix(e.Name(), ".timer") {
			continue
		}
		s := string(b)
		for _, want := range []string{"User=certfleet", "NoNewPrivileges=", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"} {
			if strings.HasSuffix(e.Name(), ".service") && !strings.Contains(s, want) {
				t.Errorf("%s lacks %s", e.Name(), want)
			}
		}
		if (e.Name() == "certfleet.service" || e.Name() == "certfleet-issue.service") &&
			(!strings.Contains(s, "AmbientCapabilities=CAP_NET_BIND_SERVICE") || !strings.Contains(s, "NoNewPrivileges=yes")) {
			t.Errorf("%s: the responders need CAP_NET_BIND_SERVICE, and nothing more", e.Name())
		}
		s = strings.ReplaceAll(s, "/usr/local/bin/certfleet", exe)
		p := filepath.Join(dir, e.Name())
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	if len(units) != 4 {
		t.Fatalf("%d units, want serve, agent, issue and its timer", len(units))
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// unprivileged returns the uid and gid of a dedicated unprivileged user
// for the test, created with useradd when missing (root only).
func unprivileged(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running as an unprivileged user needs root to switch to it (and to create it): run as root")
	}
	const name = "certfleet-test"
	u, err := user.Lookup(name)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err != nil {
			t.Fatalf("useradd %s: %v\n%s", name, err, out)
		}
		if u, err = user.Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if uid == 0 {
		t.Fatalf("%s is root", name)
	}
	return uid, gid
}

// TestServeAndIssueUnprivileged runs certfleet issue and certfleet serve
// as a dedicated unprivileged user (issue 16: running unprivileged was
// undocumented for serve): issue gets a certificate from Pebble and
// writes its files as that user, key 0600; serve starts, answers on its
// responder's port and stops cleanly on SIGTERM.
func TestServeAndIssueUnprivileged(t *testing.T) {
	uid, gid := unprivileged(t)
	binDir, err := os.MkdirTemp("", "certfleet-bin-") // t.TempDir's parents are 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	os.Chmod(binDir, 0o755)
	bin := filepath.Join(binDir, "certfleet")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/certfleet/certfleet/cmd/certfleet").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ca, port := daemontest.StartCA(t)
	// The user's own directory, reachable by it (t.TempDir's are 0700).
	dir, err := os.MkdirTemp("", "certfleet-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := daemontest.WriteConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
self_test = false # only Pebble resolves it
`)
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	run := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return cmd
	}

	out, err := run("issue", "-config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("certfleet issue as uid %d: %v\n%s", uid, err, out)
	}
	key := filepath.Join(dir, "live", "web", "privkey.pem")
	st, err := os.Stat(key)
	if err != nil {
		t.Fatalf("no key written: %v\n%s", err, out)
	}
	if sys := st.Sys().(*syscall.Stat_t); int(sys.Uid) != uid || st.Mode().Perm() != 0o600 {
		t.Errorf("privkey.pem owned by %d mode %#o, want %d and 0600", sys.Uid, st.Mode().Perm(), uid)
	}

	var serveOut bytes.Buffer
	serve := run("serve", "-config", path)
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	up := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			up = true
			break
		}
	}
	if !up {
		t.Fatalf("serve as uid %d never answered on its responder's port:\n%s", uid, serveOut.String())
	}
	serve.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve as uid %d: %v\n%s", uid, err, serveOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM:\n%s", serveOut.String())
	}
}
