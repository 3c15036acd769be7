package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/config"
)

// TestFromFile: an agent file maps onto the agent's Config (privkey is the
// key file), the client carries the token from token_file, and a token file
// without a certfleet token is refused naming the file and the key.
func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte(`server = "https://certfleet.example:8443"
token_file = "token"
state_dir = "state"
name = "lb1"

[[certificate]]
name = "www.example.org"
fullchain = "live/fullchain.pem"
privkey = "live/privkey.pem"
commands = [["systemctl", "reload", "nginx"]]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.LoadAgent(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token, wantErr string }{
		{"not a certfleet token", "abc\n", "token_file " + tokenFile + " does not hold a certfleet token"},
		{"a token", " cft_secret \n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(tokenFile, []byte(tc.token), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := agent.FromFile(f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("FromFile = %v; want an error naming %s and %q", err, path, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Client.Token != "cft_secret" || cfg.Client.BaseURL != "https://certfleet.example:8443" || cfg.Name != "lb1" {
				t.Errorf("client %q at %q, name %q", cfg.Client.Token, cfg.Client.BaseURL, cfg.Name)
			}
			if len(cfg.Certificates) != 1 {
				t.Fatalf("certificates = %+v", cfg.Certificates)
			}
			c := cfg.Certificates[0]
			if c.Name != "www.example.org" || filepath.Base(c.Files.Key) != "privkey.pem" || filepath.Base(c.Files.Fullchain) != "fullchain.pem" ||
				len(c.Commands) != 1 || c.Commands[0][2] != "nginx" {
				t.Errorf("certificate = %+v", c)
			}
		})
	}
}
