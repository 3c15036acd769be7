package agent_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/identity"
)

// TestAgentIdentity (issue 17): an agent enrolls once with a one-time
// token from an agent file without token_file, syncs its certificate and
// key over mutual TLS (the key read is recorded as the identity's, the
// fleet shows it), renews its own client certificate at half its lifetime
// for a new key, and keeps syncing with the new one; the token does not
// enroll a second host.
func TestAgentIdentity(t *testing.T) {
	s := newServer(t)
	ctx := t.Context()
	const lifetime = 6 * time.Second
	auth := &identity.Authority{Store: s.store, Events: s.store, Lifetime: lifetime}
	s.api.Identities = auth
	ts := httptest.NewUnstartedServer(s.api.Handler())
	ts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	auth.ConfigureTLS(ts.TLS)
	ts.StartTLS()
	t.Cleanup(ts.Close)

	if _, err := s.admin.PutName(ctx, "id.agent.test", nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "server-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cfgPath := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`server = %q
ca_file = %q
name = "web1"
state_dir = %q
[[certificate]]
name = "id.agent.test"
fullchain = %q
privkey = %q
`, ts.URL, caFile, filepath.Join(dir, "state"), filepath.Join(out, "fullchain.pem"), filepath.Join(out, "key.pem"))), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.LoadAgent(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.FromFile(f); err == nil || !strings.Contains(err.Error(), "--enroll-token") {
		t.Fatalf("an agent without token_file nor identity: %v, want advice to enroll", err)
	}
	_, secret, err := auth.CreateEnrollToken(ctx, identity.EnrollRequest{Names: []string{"id.agent.test"}, Actor: "cli:test"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := agent.EnrollFile(ctx, f, secret)
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, "state", agent.IdentityDirName, "key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity key file: %v, %v", st, err)
	}
	first := id.Leaf()

	cfg, err := agent.FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Identity == nil || cfg.Client.Token != "" {
		t.Fatalf("agent config: identity %v, token %q; want the identity and no token", cfg.Identity, cfg.Client.Token)
	}
	if cfg.Identity.ID() != id.ID() {
		t.Fatalf("agent file identity %s, enrolled %s", cfg.Identity.ID(), id.ID())
	}
	id = cfg.Identity // the one the running agent renews

	cfg.Wait, cfg.Resync, cfg.MaxBackoff = 2*time.Second, time.Second, time.Second // a check-in every second
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the key synced over mTLS", 60*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(out, "key.pem"))
		return strings.Contains(string(b), "PRIVATE KEY")
	})
	reads, _ := s.store.KeyReads(ctx, 0)
	if len(reads) == 0 || reads[0].TokenID != id.ID() {
		t.Errorf("key reads %+v, want by identity %s", reads, id.ID())
	}
	// Renewal at half the lifetime, for a new key, written to disk.
	waitFor(t, "the identity renewed", 3*lifetime, func() bool {
		return id.Leaf().SerialNumber.Cmp(first.SerialNumber) != 0
	})
	renewed := id.Leaf()
	if renewed.Subject.CommonName != first.Subject.CommonName {
		t.Errorf("renewed certificate names %s, want %s", renewed.Subject.CommonName, first.Subject.CommonName)
	}
	if cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "state", "identity", "cert.pem"), filepath.Join(dir, "state", "identity", "key.pem")); err != nil ||
		cert.Leaf.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Errorf("identity files after renewal: %v", err)
	}
	stored, _ := s.store.Identity(ctx, id.ID())
	if stored.Serial != fmt.Sprintf("%x", renewed.SerialNumber) {
		t.Errorf("stored serial %s, want the renewed %x", stored.Serial, renewed.SerialNumber)
	}
	// Past the first certificate's expiry the agent still syncs: it
	// reports with the renewed certificate.
	time.Sleep(time.Until(first.NotAfter) + 100*time.Millisecond)
	before := time.Now()
	waitFor(t, "a report with the renewed certificate", 30*time.Second, func() bool {
		reps, _ := s.store.AgentReports(ctx, certfleet.AgentReportFilter{})
		for _, r := range reps {
			if r.Agent == "web1" && r.ReportedAt.After(before) && r.TokenID == id.ID() {
				return true
			}
		}
		return false
	})
	// The stolen token does not enroll another host.
	f2 := *f
	f2.Agent.StateDir = filepath.Join(dir, "thief")
	if _, err := agent.EnrollFile(ctx, &f2, secret); err == nil {
		t.Errorf("the used enrollment token enrolled a second host")
	}
}
