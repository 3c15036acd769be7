package daemontest

// The test binary as another program: a TCP forwarder for prepare helpers
// to start, and a certfleet run in a process of its own so that a test can
// kill it (SIGKILL) mid-order. A package's TestMain calls RunRole first.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
)

// Roles: the first argument that makes the test binary something else.
const (
	// ForwarderRole: FLAGS are -listen ADDR -to ADDR, and optionally
	// -pidfile FILE (its pid is written there) and -hold FILE (instead of
	// forwarding, a connection creates FILE and is held open: the CA's
	// validation hangs, mid-order). It prints "forwarding ADDR to ADDR"
	// once listening.
	ForwarderRole = "certfleet-test-forwarder"
	// IssueRole: the argument is a config file; the process runs one
	// `certfleet issue` pass (daemon.Open with responders, IssueOnce),
	// logging to stderr.
	IssueRole = "certfleet-test-issue"
)

// RunRole runs the role named by os.Args[1], if any, and exits; otherwise
// it returns at once. Call it first in TestMain.
func RunRole() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case ForwarderRole:
		os.Exit(forward(os.Args[2:]))
	case IssueRole:
		os.Exit(issueOnce(os.Args[2:]))
	}
}

// SelfCommand returns the argv that runs the test binary in role.
func SelfCommand(t testing.TB, role string, args ...string) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{self, role}, args...)
}

func forward(args []string) int {
	fs := flag.NewFlagSet(ForwarderRole, flag.ContinueOnError)
	listen := fs.String("listen", "", "address to listen on")
	to := fs.String("to", "", "address to forward to")
	pidFile := fs.String("pidfile", "", "file to write the pid to")
	hold := fs.String("hold", "", "hold connections, creating this file")
	if err := fs.Parse(args); err != nil || *listen == "" || (*to == "" && *hold == "") {
		fmt.Fprintln(os.Stderr, "usage: forwarder -listen ADDR -to ADDR [-pidfile FILE] [-hold FILE]")
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "forwarder:", err)
		return 1
	}
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "forwarder:", err)
			return 1
		}
	}
	fmt.Printf("forwarding %s to %s\n", ln.Addr(), *to)
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "forwarder:", err)
			return 1
		}
		go func() {
			defer c.Close()
			if *hold != "" {
				os.WriteFile(*hold, []byte("connected\n"), 0o644)
				io.Copy(io.Discard, c) // until the peer gives up
				return
			}
			u, err := net.DialTimeout("tcp", *to, 5*time.Second)
			if err != nil {
				fmt.Fprintln(os.Stderr, "forwarder:", err)
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			io.Copy(c, u)
		}()
	}
}

func issueOnce(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: issue CONFIG")
		return 2
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	d, err := daemon.Open(ctx, cfg, daemon.Options{StartResponders: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	rep, err := d.IssueOnce(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("issued %d failed %d\n", rep.Issued, rep.Failed)
	return 0
}
