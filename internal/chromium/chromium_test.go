package chromium

import (
	"bufio"
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// findOrSkip returns the browser; under CI a missing one fails the test.
func findOrSkip(t *testing.T) string {
	t.Helper()
	path, err := Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and chromium is required: %v", err)
		}
		t.Skipf("SKIPPING: %v", err)
	}
	return path
}

const helperEnv = "CERTFLEET_CHROMIUM_ORPHAN_HELPER"

// TestBrowserDiesWithTestProcess: a test binary that dies without Close
// (a panic, go test -timeout) must not leave Chromium running. A helper
// process starts the browser, prints its pid and exits at once; the
// browser must then die too.
func TestBrowserDiesWithTestProcess(t *testing.T) {
	if dir := os.Getenv(helperEnv); dir != "" {
		b, err := Start(t.Context(), findOrSkip(t), dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("pid", b.cmd.Process.Pid)
		os.Exit(0) // no Close, as when go test -timeout kills the binary
	}
	if runtime.GOOS != "linux" {
		t.Skip("only Linux has a parent-death signal")
	}
	findOrSkip(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrowserDiesWithTestProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var pid int
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "pid "); ok {
			pid, _ = strconv.Atoi(p)
		}
	}
	if pid <= 0 {
		t.Fatalf("the helper printed no browser pid:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The browser and every process it started (renderers, GPU and
	// utility processes, in its process group): until they have all
	// ended, they may still write into the profile directory, which the
	// test's TempDir cleanup then failed to remove ("directory not
	// empty").
	for alive(pid) || len(groupMembers(pid)) > 0 {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pid, syscall.SIGKILL) // its process group
			t.Fatalf("chromium (pid %d) or its processes %v still run 30 s after the process that started it exited", pid, groupMembers(pid))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// groupMembers returns the running processes (not zombies) of process
// group pgid.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		// After the command: state, ppid, pgrp.
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// alive reports whether pid runs (a zombie has ended: in a container its
// new parent may never reap it).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// TestNavigateTypeClick: Navigate and a navigating Click return only once
// the next document has loaded, on a plain server: a form is typed into and
// posted, answered with a redirect to a slow page.
func TestNavigateTypeClick(t *testing.T) {
	path := findOrSkip(t)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>form</title><form method="post" action="/post"><input id="v" name="v"><button id="go">Send</button></form>`)
	})
	mux.HandleFunc("POST /post", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/done?v="+url.QueryEscape(r.PostFormValue("v")), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		<-release // the answer comes only after the click has been sent
		fmt.Fprintf(w, `<!doctype html><title>done</title><p>got %s</p>`, html.EscapeString(r.URL.Query().Get("v")))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b, err := Start(ctx, path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.Page(ctx)
	if err != nil {
		t.Fatalf("%v\nchromium: %s", err, b.Log())
	}
	defer p.Close()
	if err := p.Navigate(ctx, srv.URL+"/form"); err != nil {
		t.Fatal(err)
	}
	if err := p.Type(ctx, "#v", "héllo <b>"); err != nil {
		t.Fatal(err)
	}
	clicked := make(chan error, 1)
	go func() { clicked <- p.Click(ctx, "#go", true) }()
	select {
	case release <- struct{}{}: // the /done handler has the request: the click went through
	case err := <-clicked:
		t.Fatalf("the click returned before the page it leads to was answered: %v", err)
	case <-ctx.Done():
		t.Fatal("the click never reached the server")
	}
	if err := <-clicked; err != nil {
		t.Fatal(err)
	}
	if got, err := p.Text(ctx); err != nil || got != "got héllo <b>" {
		t.Fatalf("after the click the page shows %q (%v), want the posted value", got, err)
	}
}

// TestPageDialBounded: a DevTools socket that accepts the connection but
// never answers the handshake (a hung browser) must not hang Page past
// its context.
func TestPageDialBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept, read nothing, answer nothing
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	devtools := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `[{"type":"page","webSocketDebuggerUrl":"ws://%s/devtools/page/1"}]`, ln.Addr())
	}))
	defer devtools.Close()
	port, _ := strconv.Atoi(devtools.URL[strings.LastIndexByte(devtools.URL, ':')+1:])
	b := &Browser{port: port, stderr: &tailBuffer{max: 1024}, done: make(chan struct{})}

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		p, err := b.Page(ctx)
		if p != nil {
			p.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("Page connected to a socket that never answered the handshake")
		}
	case <-time.After(time.Minute):
		t.Fatal("Page still waits on an unanswered DevTools handshake a minute after its context ended")
	}
}
