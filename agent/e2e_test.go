package agent_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/sqlite"
)

func TestMain(m *testing.M) { issuetest.Main(m) }

// server is certfleet with its API on a loopback port that can be stopped
// and started again: a real SQLite store, the real manager against an
// in-process Pebble with real http-01 validation.
type server struct {
	t     *testing.T
	store *sqlite.Store
	mgr   *manager.Manager
	api   *httpapi.Server
	addr  string
	admin *httpapi.Client

	mu   sync.Mutex
	http *http.Server
}

type notifier struct{ c *certfleet.Changes }

func (n notifier) Deploy(context.Context, certfleet.CertificateSpec, certfleet.Issuance) error {
	n.c.Notify()
	return nil
}

func newServer(t *testing.T) *server {
	t.Helper()
	store := issuetest.OpenSQLite(t)
	ca, http01Solver := issuetest.StartCA(t, pebbleca.Config{}, store)
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(), TrustedRootsPEM: ca.TLSRootPEM(), Accounts: store,
		Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: http01Solver},
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	changes := &certfleet.Changes{}
	mgr := &manager.Manager{Store: store, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		Deployer: notifier{changes}, Concurrency: 4, PollInterval: time.Second}
	wg.Go(func() { mgr.Run(runCtx) })
	s := &server{t: t, store: store, mgr: mgr,
		api: &httpapi.Server{Store: store, Changes: changes, Wake: mgr.Wake, PollInterval: 200 * time.Millisecond}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.stop)
	s.admin = s.client(s.token(certfleet.PermAdmin))
	return s
}

func (s *server) serve(ln net.Listener) {
	hs := &http.Server{Handler: s.api.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.http = hs
	s.mu.Unlock()
	go hs.Serve(ln)
}

// stop closes the API and every connection (long-polls included).
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		s.http.Close()
		s.http = nil
	}
}

// start serves the API again on the same address.
func (s *server) start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen on %s again: %v", s.addr, err)
	}
	s.serve(ln)
}

func (s *server) token(perms ...certfleet.Permission) string {
	s.t.Helper()
	id, secret, hash := certfleet.NewTokenSecret()
	if err := s.store.CreateToken(s.t.Context(), certfleet.Token{ID: id, Description: "agent test", Names: []string{"*.agent.test"},
		Permissions: perms, Hash: hash, CreatedAt: time.Now()}); err != nil {
		s.t.Fatal(err)
	}
	return secret
}

func (s *server) client(secret string) *httpapi.Client {
	return &httpapi.Client{BaseURL: "http://" + s.addr, Token: secret}
}

// current returns the current issuance of the certificate serving name.
func (s *server) current(name string) certfleet.Issuance {
	s.t.Helper()
	specs, err := s.store.Specs(s.t.Context(), certfleet.SpecFilter{})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, sp := range specs {
		for _, id := range sp.Identifiers {
			if id.Value == name {
				j, err := s.store.Job(s.t.Context(), sp.JobKeys()[0])
				if err != nil || j.CurrentID == 0 {
					return certfleet.Issuance{}
				}
				iss, err := s.store.Issuance(s.t.Context(), j.CurrentID)
				if err != nil {
					s.t.Fatal(err)
				}
				return iss
			}
		}
	}
	return certfleet.Issuance{}
}

// reissue makes the server order a new certificate for name, as a renewal
// does (RetryNow does not renew a valid certificate): withdraw the spec,
// forgetting its certificate, and declare it again. It returns the old
// issuance's fingerprint.
func (s *server) reissue(name string) string {
	s.t.Helper()
	ctx := s.t.Context()
	old := s.current(name)
	sp, err := s.store.Spec(ctx, old.Spec)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.store.WithdrawSpec(ctx, sp.Name, true); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.store.PutSpec(ctx, sp); err != nil {
		s.t.Fatal(err)
	}
	s.mgr.Wake()
	return old.Fingerprint
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fileFingerprint is the fingerprint of the leaf in a PEM file, "" if none.
func fileFingerprint(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	chain, err := certfleet.ParseChain(b)
	if err != nil {
		return ""
	}
	return certfleet.Fingerprint(chain[0])
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// logCommand appends the installed certificate's fingerprint to path.
func logCommand(path string) [][]string {
	return [][]string{{"sh", "-c", `echo "$CERTFLEET_FINGERPRINT" >> "$0"`, path}}
}

// TestAgentsEndToEnd runs two agents against a real server: the initial
// sync, a renewal reaching both with each reload command run exactly once
// per change, the server stopped (files kept, --once fails) and restarted
// (agents resync), a combined PEM, a failing command in the fleet view,
// and CSR mode with a key the server never holds, rotated on schedule.
func TestAgentsEndToEnd(t *testing.T) {
	s := newServer(t)
	ctx := t.Context()
	for _, n := range []string{"web.agent.test", "lb.agent.test", "fail.agent.test"} {
		if _, err := s.admin.PutName(ctx, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	var clockB atomic.Int64 // offset of agent B's clock, for CSR key rotation
	certsA := []agent.Certificate{
		{Name: "web.agent.test", Files: agent.Files{Cert: dirA + "/web/cert.pem", Chain: dirA + "/web/chain.pem",
			Fullchain: dirA + "/web/fullchain.pem", Key: dirA + "/web/privkey.pem"}, Commands: logCommand(dirA + "/web.log")},
		{Name: "lb.agent.test", Files: agent.Files{Combined: dirA + "/haproxy/lb.pem"}, Commands: logCommand(dirA + "/lb.log")},
	}
	cfgA := agent.Config{Name: "host-a", Client: s.client(s.token(certfleet.PermReadKeys)), StateDir: dirA + "/state",
		Certificates: certsA, Wait: 5 * time.Second, Resync: time.Minute, MaxBackoff: time.Second}
	cfgB := agent.Config{Name: "host-b", Client: s.client(s.token(certfleet.PermReadKeys, certfleet.PermRequestNames)),
		StateDir: dirB + "/state", Wait: 5 * time.Second, Resync: time.Minute, MaxBackoff: time.Second,
		Now: func() time.Time { return time.Now().Add(time.Duration(clockB.Load())) },
		Certificates: []agent.Certificate{
			{Name: "web.agent.test", Files: agent.Files{Fullchain: dirB + "/web/fullchain.pem", Key: dirB + "/web/privkey.pem"},
				KeyMode: 0o640, Commands: logCommand(dirB + "/web.log")},
			{Name: "fail.agent.test", Files: agent.Files{Fullchain: dirB + "/fail/fullchain.pem"},
				Commands: [][]string{{"sh", "-c", "echo reload refused >&2; exit 3"}}},
			{Name: "csr.agent.test", CSR: true, Files: agent.Files{Fullchain: dirB + "/csr/fullchain.pem", Key: dirB + "/csr/privkey.pem"},
				Commands: logCommand(dirB + "/csr.log")},
		}}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, cfg := range []agent.Config{cfgA, cfgB} {
		a, err := agent.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { a.Run(runCtx) })
	}

	// Initial sync.
	synced := func(name string, paths ...string) func() bool {
		return func() bool {
			fp := s.current(name).Fingerprint
			if fp == "" {
				return false
			}
			for _, p := range paths {
				if fileFingerprint(p) != fp {
					return false
				}
			}
			return true
		}
	}
	webFiles := []string{dirA + "/web/cert.pem", dirA + "/web/fullchain.pem", dirB + "/web/fullchain.pem"}
	waitFor(t, "web on both agents", 60*time.Second, synced("web.agent.test", webFiles...))
	waitFor(t, "lb on agent A", 60*time.Second, synced("lb.agent.test", dirA+"/haproxy/lb.pem"))
	waitFor(t, "fail on agent B", 60*time.Second, synced("fail.agent.test", dirB+"/fail/fullchain.pem"))
	waitFor(t, "csr on agent B", 60*time.Second, synced("csr.agent.test", dirB+"/csr/fullchain.pem"))
	web1 := s.current("web.agent.test").Fingerprint
	for _, log := range []string{dirA + "/web.log", dirB + "/web.log"} {
		waitFor(t, log, 5*time.Second, func() bool { return len(lines(t, log)) == 1 })
		if got := lines(t, log); got[0] != web1 {
			t.Fatalf("%s = %v, want the fingerprint %s", log, got, web1)
		}
	}
	assertKeyPair(t, dirA+"/web/privkey.pem", dirA+"/web/cert.pem", 0o600)
	assertKeyPair(t, dirB+"/web/privkey.pem", dirB+"/web/fullchain.pem", 0o640)
	assertCombined(t, dirA+"/haproxy/lb.pem", s.current("lb.agent.test"))

	// The fleet view: both agents current on web; agent B's failing
	// reload reported with its exit status.
	waitFor(t, "fleet view of web and fail", 10*time.Second, func() bool {
		st, _, _, err := s.admin.Status(ctx, "web.agent.test", httpapi.FetchOptions{})
		if err != nil || len(st.Fleet) != 2 || !st.Fleet[0].Current || !st.Fleet[1].Current {
			return false
		}
		st, _, _, err = s.admin.Status(ctx, "fail.agent.test", httpapi.FetchOptions{})
		return err == nil && len(st.Fleet) == 1 && st.Fleet[0].Agent == "host-b" && strings.Contains(st.Fleet[0].Error, "exit status 3") &&
			len(st.Fleet[0].Commands) == 1 && st.Fleet[0].Commands[0].ExitCode == 3
	})

	// A renewal reaches both agents, and each runs its reload once.
	s.reissue("web.agent.test")
	waitFor(t, "renewed web issued", 60*time.Second, func() bool { fp := s.current("web.agent.test").Fingerprint; return fp != "" && fp != web1 })
	waitFor(t, "renewed web on both agents", 10*time.Second, synced("web.agent.test", webFiles...))
	web2 := s.current("web.agent.test").Fingerprint
	assertKeyPair(t, dirA+"/web/privkey.pem", dirA+"/web/cert.pem", 0o600)
	assertKeyPair(t, dirB+"/web/privkey.pem", dirB+"/web/fullchain.pem", 0o640)
	time.Sleep(1500 * time.Millisecond) // room for a wrong second run
	for _, log := range []string{dirA + "/web.log", dirB + "/web.log"} {
		if got := lines(t, log); len(got) != 2 || got[1] != web2 {
			t.Fatalf("%s = %v, want [%s %s]: one run per change", log, got, web1, web2)
		}
	}
	if got := lines(t, dirA+"/lb.log"); len(got) != 1 {
		t.Fatalf("lb.log = %v: lb's reload ran without a change", got)
	}

	// The server goes away: the agents keep their files, --once fails.
	s.stop()
	s.reissue("web.agent.test")
	waitFor(t, "web issued while the API is down", 60*time.Second, func() bool { fp := s.current("web.agent.test").Fingerprint; return fp != "" && fp != web2 })
	onceCfg := cfgA
	onceCfg.StateDir = t.TempDir()
	once, err := agent.New(onceCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := once.Once(ctx); err == nil {
		t.Fatal("Once with the server down succeeded")
	}
	time.Sleep(time.Second)
	for _, p := range webFiles {
		if fileFingerprint(p) != web2 {
			t.Fatalf("%s changed or vanished while the server was down", p)
		}
	}
	// Back: the agents resync, and reload once more.
	s.start()
	waitFor(t, "web after the restart", 20*time.Second, synced("web.agent.test", webFiles...))
	web3 := s.current("web.agent.test").Fingerprint
	for _, log := range []string{dirA + "/web.log", dirB + "/web.log"} {
		waitFor(t, log+" third line", 5*time.Second, func() bool { return len(lines(t, log)) >= 3 })
		if got := lines(t, log); len(got) != 3 || got[2] != web3 {
			t.Fatalf("%s = %v, want three runs ending with %s", log, got, web3)
		}
	}
	if err := once.Once(ctx); err != nil {
		t.Fatalf("Once with the server back: %v", err)
	}

	// CSR mode: the key is the host's, and the server never had it.
	key1, _ := os.ReadFile(dirB + "/csr/privkey.pem")
	assertKeyPair(t, dirB+"/csr/privkey.pem", dirB+"/csr/fullchain.pem", 0o600)
	assertStoreLacksKey(t, s, "csr.agent.test", key1)
	// Half the lifetime later, the agent rotates the key.
	clockB.Store(int64(50 * 24 * time.Hour))
	waitFor(t, "a new CSR key", 60*time.Second, func() bool {
		k, _ := os.ReadFile(dirB + "/csr/privkey.pem")
		return !bytes.Equal(k, key1) && synced("csr.agent.test", dirB+"/csr/fullchain.pem")()
	})
	key2, _ := os.ReadFile(dirB + "/csr/privkey.pem")
	assertKeyPair(t, dirB+"/csr/privkey.pem", dirB+"/csr/fullchain.pem", 0o600)
	assertStoreLacksKey(t, s, "csr.agent.test", key1)
	assertStoreLacksKey(t, s, "csr.agent.test", key2)
	waitFor(t, "csr.log second line", 5*time.Second, func() bool { return len(lines(t, dirB+"/csr.log")) >= 2 })
	time.Sleep(time.Second)
	if got := lines(t, dirB+"/csr.log"); len(got) != 2 {
		t.Fatalf("csr.log = %v, want two runs (issue, rotation)", got)
	}
	if ents, _ := os.ReadDir(dirB + "/state"); len(ents) == 0 {
		t.Fatal("no state kept")
	} else {
		for _, e := range ents {
			if strings.Contains(e.Name(), "pending") {
				t.Fatalf("pending key %s left after installation", e.Name())
			}
		}
	}
}

func assertKeyPair(t *testing.T, keyPath, certPath string, mode os.FileMode) {
	t.Helper()
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != mode {
		t.Errorf("%s has mode %v, want %v", keyPath, st.Mode().Perm(), mode)
	}
	kb, _ := os.ReadFile(keyPath)
	key, err := certfleet.ParsePrivateKey(kb)
	if err != nil {
		t.Fatalf("%s: %v", keyPath, err)
	}
	cb, _ := os.ReadFile(certPath)
	chain, err := certfleet.ParseChain(cb)
	if err != nil {
		t.Fatal(err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(chain[0].PublicKey) {
		t.Fatalf("%s does not match %s", keyPath, certPath)
	}
}

// assertCombined checks a combined PEM: the key first, then the full
// chain, the key matching the leaf.
func assertCombined(t *testing.T, path string, iss certfleet.Issuance) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, rest := pem.Decode(b)
	if first == nil || first.Type != "PRIVATE KEY" {
		t.Fatalf("%s does not start with the private key", path)
	}
	if !bytes.Equal(rest, iss.ChainPEM) {
		t.Fatalf("%s: after the key comes something else than the full chain", path)
	}
	if !bytes.Equal(pem.EncodeToMemory(first), iss.KeyPEM) {
		t.Fatalf("%s: key is not the certificate's", path)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
}

// assertStoreLacksKey scans every issuance's KeyPEM.
func assertStoreLacksKey(t *testing.T, s *server, name string, key []byte) {
	t.Helper()
	all, err := s.store.Issuances(t.Context(), certfleet.IssuanceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := certfleet.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := pem.Decode(key)
	for _, iss := range all {
		if bytes.Contains(iss.KeyPEM, der.Bytes) || bytes.Contains(iss.KeyPEM, key) {
			t.Fatalf("the store holds the agent's key in issuance %d of %s", iss.ID, iss.Spec)
		}
		if len(iss.KeyPEM) > 0 {
			if sk, err := certfleet.ParsePrivateKey(iss.KeyPEM); err == nil && sk.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
				t.Fatalf("the store holds the agent's key in issuance %d of %s", iss.ID, iss.Spec)
			}
		}
		if strings.HasPrefix(iss.Spec, "csr") && len(iss.KeyPEM) != 0 {
			t.Fatalf("issuance %d of CSR-mode %s has a key in the store", iss.ID, iss.Spec)
		}
	}
	_ = name
}
