package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseAPI(t *testing.T) {
	const base = "[ca]\ndirectory = \"https://ca.test/dir\"\n[[certificate]]\nname = \"api\"\nidentifiers = [\"api.example.org\"]\n"
	cfg := mustParse(t, base)
	if cfg.API.Listen != "" || cfg.API.PackSize != 0 {
		t.Fatalf("defaults: %+v", cfg.API)
	}
	cfg = mustParse(t, base+"[api]\nlisten = \"127.0.0.1:8555\"\nurl_listen = \"[::1]:8556\"\npack_size = 10\n")
	if cfg.API.Listen != "127.0.0.1:8555" || cfg.API.URLListen != "[::1]:8556" || cfg.API.PackSize != 10 {
		t.Fatalf("parsed: %+v", cfg.API)
	}
	if cfg.API.PackDelay != DefaultPackDelay {
		t.Errorf("pack_delay absent: %s, want the default %s", cfg.API.PackDelay, DefaultPackDelay)
	}
	for src, want := range map[string]time.Duration{"pack_delay = \"0s\"\n": 0, "pack_delay = \"10s\"\n": 10 * time.Second} {
		if cfg := mustParse(t, base+"[api]\n"+src); cfg.API.PackDelay != want {
			t.Errorf("%q: pack_delay %s, want %s", src, cfg.API.PackDelay, want)
		}
	}
	cfg = mustParse(t, base+"[api]\nlisten = \":8555\"\ntls_certificate = \"api\"\n")
	if cfg.API.TLSCertificate != "api" {
		t.Fatalf("parsed: %+v", cfg.API)
	}
	cfg = mustParse(t, base+"[api]\nlisten = \"127.0.0.1:8555\"\nmax_connections_per_ip = 5000\n")
	if cfg.API.MaxConnsPerIP != 5000 {
		t.Fatalf("max_connections_per_ip: %+v", cfg.API)
	}
	for _, tc := range []struct{ src, want string }{
		{"[api]\nmax_connections_per_ip = 0\n", "certfleet.toml:7: api.max_connections_per_ip: 0 is out of range"},
		{"[api]\nmax_connections_per_ip = \"many\"\n", "must be an integer"},
		{"[api]\nlisten = \"0.0.0.0:8555\"\n", "not a loopback address"},
		{"[api]\nlisten = \"8555\"\n", "not a listen address"},
		{"[api]\nlisten = \":8555\"\ntls_certificate = \"nope\"\n", `no [[certificate]] is named "nope"`},
		{"[api]\npack_size = 0\n", "out of range"},
		{"[api]\npack_size = \"2\"\n", "must be an integer"},
		{"[api]\npack_delay = \"2h\"\n", "api.pack_delay: \"2h\": give a duration from \"0s\""},
		{"[api]\npack_delay = \"soon\"\n", "api.pack_delay"},
		{"[api]\nlisen = \"127.0.0.1:1\"\n", "lisen"},
	} {
		_, err := Parse("certfleet.toml", []byte(base+tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.src, err, tc.want)
		}
	}
}
