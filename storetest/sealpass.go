package storetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/sqlstore"
)

// SealPass is a store that can seal the keys it holds in plaintext
// (sqlstore.Store's seal pass, issue 17).
type SealPass interface {
	certfleet.Store
	certfleet.AccountAdmin
	PlaintextKeys(ctx context.Context) (map[string]int, error)
	SealPlaintextKeys(ctx context.Context, opts sqlstore.SealPassOptions) (sqlstore.SealPassResult, error)
}

// SealPassOpener opens the same database at each call, with the master key
// kek (nil: none); the store is closed when t ends, or earlier by the test.
type SealPassOpener func(t *testing.T, kek seal.KeyWrapper) SealPass

// FilledKeys are the private keys FillPlaintext stored, as PEM.
type FilledKeys struct {
	// Issuances are the keys of every issuance (current and archived), by ID.
	Issuances map[int64][]byte
	// Pending is the pending order key of the first spec's job.
	Pending []byte
	// Account and AccountPending are the account key and its pending
	// rollover key (CA "ca", account "default").
	Account, AccountPending []byte
	// IdentityCA is the host identities' CA key, when the store keeps
	// identities.
	IdentityCA []byte
	// Count is how many key values that is.
	Count int
}

// FillPlaintext fills s (opened without a master key) with n specs, each
// with a current and an archived issuance, a pending order key, and an
// account with a pending rollover key: every column certfleet keeps keys in.
func FillPlaintext(t *testing.T, s SealPass, n int) FilledKeys {
	t.Helper()
	ctx := t.Context()
	fk := FilledKeys{Issuances: map[int64][]byte{}}
	specs := NewSpecs("seal", n)
	mustSync(t, s, certfleet.SourceConfig, specs...)
	for i, sp := range specs {
		for gen := range 2 {
			iss := mustCompleteUnique(t, s, sp, fmt.Sprintf("%02x%04x", gen, i))
			fk.Issuances[iss.ID] = iss.KeyPEM
		}
	}
	key := certfleet.JobKey{Spec: specs[0].Name, KeyType: certfleet.ECDSAP256}
	j := mustClaimKey(t, s, "sealer", key)
	fk.Pending = []byte("-----BEGIN PRIVATE KEY-----\npending order key\n-----END PRIVATE KEY-----\n")
	if err := s.SetPendingOrder(ctx, j.JobKey, "sealer", "https://ca.example/order/pending", fk.Pending); err != nil {
		t.Fatal(err)
	}
	fk.Account = []byte("-----BEGIN PRIVATE KEY-----\naccount key\n-----END PRIVATE KEY-----\n")
	if _, err := s.CreateAccount(ctx, certfleet.Account{CA: "ca", Name: certfleet.DefaultAccount, KeyPEM: fk.Account, URL: "https://ca.example/acct/1"}); err != nil {
		t.Fatal(err)
	}
	fk.AccountPending = []byte("-----BEGIN PRIVATE KEY-----\nnew account key\n-----END PRIVATE KEY-----\n")
	if err := s.BeginKeyRollover(ctx, "ca", certfleet.DefaultAccount, fk.AccountPending); err != nil {
		t.Fatal(err)
	}
	fk.Count = len(fk.Issuances) + 3
	if is, ok := s.(certfleet.IdentityStore); ok {
		fk.IdentityCA = []byte("-----BEGIN PRIVATE KEY-----\nidentity CA key\n-----END PRIVATE KEY-----\n")
		if _, err := is.CreateIdentityCA(ctx, certfleet.IdentityCA{ID: "ca-1", CertPEM: []byte("-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"),
			KeyPEM: fk.IdentityCA, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		fk.Count++
	}
	return fk
}

// mustCompleteUnique is mustComplete with a fingerprint and serial of its
// own, so that every issuance's key is bound to a distinct row.
func mustCompleteUnique(t *testing.T, s certfleet.Store, sp certfleet.CertificateSpec, tag string) certfleet.Issuance {
	t.Helper()
	kt := sp.KeyTypes[0]
	mustClaimKey(t, s, "owner-a", certfleet.JobKey{Spec: sp.Name, KeyType: kt})
	iss := NewIssuance(sp, kt)
	iss.Fingerprint = fmt.Sprintf("%064s", tag)
	iss.KeyPEM = []byte("-----BEGIN PRIVATE KEY-----\nkey " + sp.Name + " " + tag + "\n-----END PRIVATE KEY-----\n")
	got, err := s.CompleteIssuance(t.Context(), "owner-a", iss,
		certfleet.ScheduleUpdate{NextAt: iss.IssuedAt}, certfleet.Attempt{Instance: "owner-a"})
	if err != nil {
		t.Fatalf("CompleteIssuance(%s): %v", sp.Name, err)
	}
	return got
}

// CheckKeys reads every key FillPlaintext stored back through s and
// compares it with what was stored.
func CheckKeys(t *testing.T, s SealPass, fk FilledKeys) {
	t.Helper()
	ctx := t.Context()
	for id, want := range fk.Issuances {
		iss, err := s.Issuance(ctx, id)
		if err != nil || !bytes.Equal(iss.KeyPEM, want) {
			t.Fatalf("issuance %d key after sealing: %q, %v; want it unchanged", id, iss.KeyPEM, err)
		}
	}
	a, err := s.Account(ctx, "ca", certfleet.DefaultAccount)
	if err != nil || !bytes.Equal(a.KeyPEM, fk.Account) || !bytes.Equal(a.PendingKeyPEM, fk.AccountPending) {
		t.Fatalf("account keys after sealing: %q %q, %v", a.KeyPEM, a.PendingKeyPEM, err)
	}
	if fk.IdentityCA != nil {
		cas, err := s.(certfleet.IdentityStore).IdentityCAs(ctx)
		if err != nil || len(cas) != 1 || !bytes.Equal(cas[0].KeyPEM, fk.IdentityCA) {
			t.Fatalf("identity CA key after sealing: %v, %v", cas, err)
		}
	}
	jobs := mustJobs(t, s, certfleet.JobFilter{})
	found := false
	for _, j := range jobs {
		if len(j.PendingKeyPEM) > 0 {
			found = true
			if !bytes.Equal(j.PendingKeyPEM, fk.Pending) {
				t.Fatalf("pending key of %s after sealing: %q", j.JobKey, j.PendingKeyPEM)
			}
		}
	}
	if !found {
		t.Fatal("the pending order key is gone after sealing")
	}
}

// RunSealPass is the seal pass's contract (issue 17): a store filled
// without a master key holds every key in plaintext; opened with one, the
// pass seals them all (in batches, reporting progress), reads them back
// unchanged, leaves nothing plaintext, and a second pass has nothing to do.
// A store without a master key cannot run it.
func RunSealPass(t *testing.T, open SealPassOpener, newKEK func(t *testing.T) seal.KeyWrapper) {
	ctx := t.Context()
	plain := open(t, nil)
	fk := FillPlaintext(t, plain, 5)
	left, err := plain.PlaintextKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := sum(left); got != fk.Count {
		t.Fatalf("PlaintextKeys before sealing = %v (%d), want %d", left, got, fk.Count)
	}
	if _, err := plain.SealPlaintextKeys(ctx, sqlstore.SealPassOptions{}); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Fatalf("SealPlaintextKeys without a master key: %v, want EINVALID", err)
	}
	plain.Close()

	kek := newKEK(t)
	s := open(t, kek)
	var progress []sqlstore.SealProgress
	res, err := s.SealPlaintextKeys(ctx, sqlstore.SealPassOptions{Batch: 3, Progress: func(p sqlstore.SealProgress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatalf("SealPlaintextKeys: %v", err)
	}
	if res.Total() != fk.Count || res.Remaining != 0 || !res.Compacted {
		t.Fatalf("SealPlaintextKeys = %+v (total %d), want %d sealed, none remaining, compacted", res, res.Total(), fk.Count)
	}
	if want := 4 + 1 + 1 + 1; len(progress) < want || progress[len(progress)-1].Sealed != fk.Count || progress[0].Total != fk.Count {
		t.Errorf("progress reports = %+v, want at least %d ending at %d of %d", progress, want, fk.Count, fk.Count)
	}
	if left, err := s.PlaintextKeys(ctx); err != nil || len(left) != 0 {
		t.Fatalf("PlaintextKeys after sealing = %v, %v; want none", left, err)
	}
	CheckKeys(t, s, fk)
	again, err := s.SealPlaintextKeys(ctx, sqlstore.SealPassOptions{})
	if err != nil || again.Total() != 0 || again.Compacted {
		t.Fatalf("second SealPlaintextKeys = %+v, %v; want nothing to do", again, err)
	}
	s.Close()
	// The sealed store needs its master key from now on.
	s = open(t, kek)
	CheckKeys(t, s, fk)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// SealChildEnv makes a test binary the child of RunSealPassKilled: it seals
// the store the variable names, one key per batch, reporting each batch,
// slowly, until it is killed. SealChildEnv+"_KEY" holds the master key.
const SealChildEnv = "CERTFLEET_TEST_SEAL_CHILD"

// RunSealPassKilled is the seal pass's crash case (issue 17): a process
// sealing the store is killed (SIGKILL) in the middle of the pass; the keys
// its committed batches sealed stay sealed, the others are still plaintext
// and every key reads back; the next pass seals the rest and compacts, and
// leaks (the backend's look at its files) finds nothing. The child is the
// test binary itself, run again for this test with SealChildEnv set.
// newTarget names a new database (a path, a DSN), openAt opens it.
func RunSealPassKilled(t *testing.T, newTarget func(t *testing.T) string,
	openAt func(t *testing.T, target string, kek seal.KeyWrapper) SealPass,
	leaks func(t *testing.T, target string, fk FilledKeys) []string) {
	if target := os.Getenv(SealChildEnv); target != "" {
		kek, err := seal.LocalKeyFromText(os.Getenv(SealChildEnv+"_KEY"), "test")
		if err != nil {
			t.Fatal(err)
		}
		s := openAt(t, target, kek)
		_, err = s.SealPlaintextKeys(t.Context(), sqlstore.SealPassOptions{Batch: 1, Progress: func(p sqlstore.SealProgress) {
			fmt.Printf("sealed %d of %d\n", p.Sealed, p.Total)
			time.Sleep(30 * time.Millisecond)
		}})
		t.Fatalf("the child finished sealing (%v) before it was killed", err)
	}
	target := newTarget(t)
	plain := openAt(t, target, nil)
	fk := FillPlaintext(t, plain, 20)
	plain.Close()
	key, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	kek, err := seal.NewLocalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	killed := killSealChild(t, target, seal.EncodeMasterKey(key), 6)

	s := openAt(t, target, kek)
	left, err := s.PlaintextKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := sum(left)
	if n < 1 || n > fk.Count-killed {
		t.Fatalf("after the kill %d keys are plaintext; want between 1 and %d (%d of %d reported sealed before the kill)", n, fk.Count-killed, killed, fk.Count)
	}
	CheckKeys(t, s, fk) // sealed and plaintext keys both read back
	res, err := s.SealPlaintextKeys(t.Context(), sqlstore.SealPassOptions{})
	if err != nil || res.Total() != n || res.Remaining != 0 || !res.Compacted {
		t.Fatalf("resumed pass = %+v (sealed %d), %v; want the %d left sealed and the database compacted", res, res.Total(), err, n)
	}
	CheckKeys(t, s, fk)
	if found := leaks(t, target, fk); len(found) > 0 {
		t.Fatalf("after the resumed pass the database still holds: %v", found)
	}
}

// killSealChild runs the seal pass in a child process on target and kills
// it (SIGKILL) once it has reported after keys sealed; it returns how many
// keys the child had reported.
func killSealChild(t *testing.T, target, keyText string, after int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$")
	cmd.Env = append(os.Environ(), SealChildEnv+"="+target, SealChildEnv+"_KEY="+keyText)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	sc := bufio.NewScanner(out)
	sealed := 0
	for sc.Scan() {
		var total int
		if _, err := fmt.Sscanf(sc.Text(), "sealed %d of %d", &sealed, &total); err != nil {
			continue
		}
		if sealed >= after {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the sealing child was not killed mid-pass (after %d keys): %v", sealed, err)
	}
	if sealed < after {
		t.Fatalf("the child reported %d keys sealed, want %d before the kill", sealed, after)
	}
	return sealed
}
