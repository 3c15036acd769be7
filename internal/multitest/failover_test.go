package multitest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// Environment of the child process of TestFailover.
const (
	childDSNEnv  = "CERTFLEET_MULTITEST_CHILD_DSN"
	childDirEnv  = "CERTFLEET_MULTITEST_CHILD_DIRECTORY"
	childRootEnv = "CERTFLEET_MULTITEST_CHILD_ROOT"
)

// failoverLease is the lease of both instances: short, so the test shows
// takeover within it.
const failoverLease = 3 * time.Second

// stuckSolver reports each challenge on stdout and never answers it: the
// child holds its leases, with its orders placed and recorded, until it is
// killed.
type stuckSolver struct{}

func (stuckSolver) Present(ctx context.Context, chal certfleet.Challenge) error {
	fmt.Printf("presented %s\n", chal.Identifier.Value)
	<-ctx.Done()
	return ctx.Err()
}

func (stuckSolver) CleanUp(ctx context.Context, chal certfleet.Challenge) error { return nil }

// TestFailover kills (SIGKILL) a separate process running an instance while
// it holds leases on orders in flight. The surviving instance takes the work
// over once the leases expire (within the lease time of the kill), resumes
// the orders the dead one placed instead of placing new ones, and no name is
// issued twice.
func TestFailover(t *testing.T) {
	if dsn := os.Getenv(childDSNEnv); dsn != "" {
		failoverChild(t, dsn)
		return
	}
	if testing.Short() {
		t.Skip("starts and kills a child process")
	}
	c := newCluster(t)
	const n = 60
	if _, err := c.db.SyncSpecs(t.Context(), certfleet.SourceConfig, specs("failover", n)); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "ca-root.pem")
	if err := os.WriteFile(root, c.ca.TLSRootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFailover$", "-test.count=1")
	cmd.Env = append(os.Environ(), childDSNEnv+"="+c.dsn, childDirEnv+"="+c.ca.DirectoryURL(), childRootEnv+"="+root)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	const childSlots = instanceConcurrency // the child fills every slot
	presented := make(chan string, n)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "presented "); ok {
				presented <- name
			}
		}
	}()
	for i := range childSlots {
		select {
		case <-presented:
		case <-time.After(time.Minute):
			t.Fatalf("the child presented only %d challenges", i)
		}
	}

	// The child's work: leased, with the orders recorded.
	held, err := c.db.Jobs(t.Context(), certfleet.JobFilter{Leased: true})
	if err != nil {
		t.Fatal(err)
	}
	pending := map[certfleet.JobKey]string{}
	for _, j := range held {
		if j.LeaseOwner != "child" || j.PendingOrderURL == "" {
			t.Fatalf("job %s: lease %q, pending order %q; want the child's lease with an order", j.JobKey, j.LeaseOwner, j.PendingOrderURL)
		}
		pending[j.JobKey] = j.PendingOrderURL
	}
	if len(pending) != childSlots {
		t.Fatalf("the child holds %d leases, want %d", len(pending), childSlots)
	}

	survivor := newInstance(t, c.dsn, c.ca.DirectoryURL(), c.ca.TLSRootPEM(), "survivor", nil)
	survivor.Lease = failoverLease
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- survivor.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(200 * time.Millisecond) // the survivor is at work
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL", cmd.ProcessState)
	}

	// The dead instance's jobs are taken over once its leases expire.
	limit := failoverLease + 3*time.Second // lease, one idle second of the loop, the issuance
	for key := range pending {
		for {
			j, err := c.db.Job(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if j.CurrentID != 0 {
				break
			}
			if time.Since(killed) > limit {
				t.Fatalf("%s not taken over within %v of the kill: lease %q until %v, failures %d, last error %q",
					key, limit, j.LeaseOwner, j.LeaseUntil, j.Failures, j.LastError)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("the killed instance's %d jobs were issued %v after the kill (lease %v)", len(pending), time.Since(killed).Round(time.Millisecond), failoverLease)
	c.waitIssued(time.Now().Add(time.Minute))
	c.checkExactlyOnce(n)
	for key, url := range pending {
		iss, err := c.db.Issuances(t.Context(), certfleet.IssuanceFilter{Spec: key.Spec, KeyType: key.KeyType})
		if err != nil || len(iss) != 1 {
			t.Fatalf("issuances of %s: %d, %v", key, len(iss), err)
		}
		if iss[0].OrderURL != url {
			t.Errorf("%s issued from order %s, want the dead instance's order %s resumed", key, iss[0].OrderURL, url)
		}
	}
}

// failoverChild runs one instance until it is killed. Its solver never
// answers, so it holds its leases and orders.
func failoverChild(t *testing.T, dsn string) {
	root, err := os.ReadFile(os.Getenv(childRootEnv))
	if err != nil {
		t.Fatal(err)
	}
	m := newInstance(t, dsn, os.Getenv(childDirEnv), root, "child", stuckSolver{})
	m.Lease = failoverLease
	m.Run(t.Context())
}
