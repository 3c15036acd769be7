package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestAgentCommandOnce: --once against an unreachable server exits 1 and
// keeps the files; a broken config exits 2 with file:line.
func TestAgentCommandOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/token", []byte("cft_test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/fullchain.pem", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `server = "http://127.0.0.1:1"
token_file = "token"
state_dir = "state"
name = "test-host"

[[certificate]]
name = "www.example.org"
fullchain = "fullchain.pem"
`
	if err := os.WriteFile(dir+"/agent.toml", []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Run(t.Context(), []string{"agent", "-config", dir + "/agent.toml", "--once"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr.String())
	}
	if b, _ := os.ReadFile(dir + "/fullchain.pem"); string(b) != "old" {
		t.Fatal("the file was touched while the server was unreachable")
	}
	if strings.Contains(stderr.String(), "cft_test") {
		t.Fatalf("stderr shows the token: %s", stderr.String())
	}
	if err := os.WriteFile(dir+"/agent.toml", []byte(cfg+"colour = \"blue\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := Run(t.Context(), []string{"agent", "-config", dir + "/agent.toml", "--once"}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "agent.toml:") {
		t.Fatalf("no file:line in %s", stderr.String())
	}
}
