package sqlite_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// crashChildEnv names the database a re-executed test binary works on
// until it is killed.
const crashChildEnv = "CERTFLEET_SQLITE_CRASH_CHILD"

// TestCrashSafety kills a process with SIGKILL while it issues certificates
// as fast as it can, then reopens the database and checks that every
// CompleteIssuance is either wholly there or wholly absent: the job's
// current issuance is its newest archived one, and each archived issuance
// has its attempt.
func TestCrashSafety(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	path := filepath.Join(t.TempDir(), "certfleet.db")
	s := mustOpen(t, path)
	specs := storetest.NewSpecs("crash", 20, certfleet.RSA2048, certfleet.ECDSAP256)
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	s.Close()

	for round, delay := range []time.Duration{0, 30 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashSafety$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the child is issuing, then kill it mid-stride.
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "issuing" {
					ready <- true
					break
				}
			}
			for sc.Scan() { // drain
			}
		}()
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: child never started issuing", round)
		}
		time.Sleep(delay)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not by SIGKILL", round, err)
		}
		checkIntegrity(t, path)
		n := checkCrashState(t, path)
		t.Logf("round %d: killed after %v; %d issuances archived so far", round, delay, n)
	}
}

// checkCrashState reopens the store and checks the issuance invariants
// through the interface; it returns the number of archived issuances.
func checkCrashState(t *testing.T, path string) int {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	jobs, err := s.Jobs(t.Context(), certfleet.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, j := range jobs {
		issued, err := s.Issuances(t.Context(), certfleet.IssuanceFilter{Spec: j.Spec, KeyType: j.KeyType})
		if err != nil {
			t.Fatal(err)
		}
		total += len(issued)
		if len(issued) == 0 {
			if j.CurrentID != 0 {
				t.Errorf("job %s: current issuance %d but none archived", j.JobKey, j.CurrentID)
			}
			continue
		}
		if j.CurrentID != issued[0].ID || j.CurrentRevision != issued[0].SpecRevision {
			t.Errorf("job %s: current %d, newest archived %d: an issuance was half applied", j.JobKey, j.CurrentID, issued[0].ID)
		}
		if j.PendingOrderURL != "" && j.PendingOrderURL == issued[0].OrderURL {
			t.Errorf("job %s: pending order %s kept after its issuance", j.JobKey, j.PendingOrderURL)
		}
		attempts, err := s.Attempts(t.Context(), j.JobKey, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(len(issued), 50); len(attempts) != want {
			t.Errorf("job %s: %d attempts for %d issuances, want %d", j.JobKey, len(attempts), len(issued), want)
		}
		if len(attempts) > 0 && attempts[0].OrderURL != issued[0].OrderURL {
			t.Errorf("job %s: newest attempt is for %s, newest issuance for %s", j.JobKey, attempts[0].OrderURL, issued[0].OrderURL)
		}
	}
	return total
}

// crashChild issues certificates in a loop until killed (or 60 s pass).
func crashChild(t *testing.T, path string) {
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "child", Now: time.Now(), Lease: time.Minute, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			iss := storetest.NewIssuance(storetest.NewSpec(j.Spec), j.KeyType)
			iss.OrderURL = fmt.Sprintf("https://ca.example/order/%d-%s", i, j.JobKey)
			if err := s.SetPendingOrder(ctx, j.JobKey, "child", iss.OrderURL, []byte("pending key")); err != nil {
				t.Fatal(err)
			}
			tok := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: iss.OrderURL, KeyAuthorization: "ka", Expires: time.Now().Add(time.Minute)}
			if err := s.PutChallenge(ctx, tok); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CompleteIssuance(ctx, "child", iss, certfleet.ScheduleUpdate{NextAt: time.Now()}, certfleet.Attempt{Instance: "child"}); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteChallenge(ctx, tok.Type, tok.Key); err != nil {
				t.Fatal(err)
			}
		}
		if i == 0 {
			fmt.Println("issuing")
		}
	}
	t.Fatal("child was not killed within 60 s")
}
