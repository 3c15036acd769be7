package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/certfleet/certfleet"
)

// FuzzParse checks that Parse never panics, that it fails only with an
// *Error whose problems name the file, and that whatever it accepts is a
// configuration the rest of certfleet can rely on.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../examples/certfleet.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, tc := range problemCases {
		f.Add([]byte(tc.src))
	}
	f.Add([]byte(ca + "[[certificate]]\nidentifiers = [\"bücher.example\", \"*.Example.ORG.\", \"[::ffff:192.0.2.1]\"]\nchallenge = \"dns-01\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(data)()
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("Parse error is %T %v, want *Error with problems", err, err)
			}
			for _, p := range cerr.Problems {
				if p.File != "fuzz.toml" || p.Message == "" || p.Line < 0 {
					t.Fatalf("malformed problem %+v", p)
				}
			}
			return
		}
		checkConfig(t, cfg)
	})
}

func checkConfig(t *testing.T, cfg *Config) {
	t.Helper()
	if !filepath.IsAbs(cfg.State) && !strings.Contains(cfg.State, "://") {
		t.Fatalf("State %q is neither absolute nor a URL", cfg.State)
	}
	names := make(map[string]bool)
	for _, cert := range cfg.Certificates {
		spec := cert.Spec
		if err := spec.Validate(); err != nil {
			t.Fatalf("accepted spec fails Validate: %v\n%+v", err, spec)
		}
		if spec.Source != certfleet.SourceConfig {
			t.Fatalf("Source = %q", spec.Source)
		}
		if names[strings.ToLower(spec.Name)] {
			t.Fatalf("name %q accepted twice", spec.Name)
		}
		names[strings.ToLower(spec.Name)] = true
		if _, ok := cfg.Accounts[spec.AccountName()]; !ok {
			t.Fatalf("spec %q uses account %q, which is not configured", spec.Name, spec.AccountName())
		}
		for _, id := range spec.Identifiers {
			again, err := certfleet.ParseIdentifier(id.Value)
			if err != nil || again != id {
				t.Fatalf("identifier %+v is not normalised: ParseIdentifier gives %+v, %v", id, again, err)
			}
		}
		if (spec.Challenge == certfleet.ChallengeWebroot) != (cert.Webroot != "") {
			t.Fatalf("challenge %s with webroot %q", spec.Challenge, cert.Webroot)
		}
		if cert.Webroot != "" && !filepath.IsAbs(cert.Webroot) {
			t.Fatalf("webroot %q is relative", cert.Webroot)
		}
		if d := cert.Output.Dir; d != "" && !filepath.IsAbs(d) {
			t.Fatalf("output dir %q is relative", d)
		}
		if cert.Output.KeyMode&^0o770 != 0 {
			t.Fatalf("key mode %#o", cert.Output.KeyMode)
		}
		for _, argv := range cert.Output.Commands {
			if len(argv) == 0 || argv[0] == "" {
				t.Fatalf("empty command in %q", cert.Output.Commands)
			}
		}
	}
	for name, a := range cfg.Accounts {
		if a.Name != name || !strings.HasPrefix(a.Directory, "https://") {
			t.Fatalf("account %q = %+v", name, a)
		}
		if (a.EABKeyID == "") != (a.EABHMACKey == "") {
			t.Fatalf("account %q has half an EAB", name)
		}
	}
}

// FuzzIdentifiers drives certfleet.ParseIdentifier through a config's
// identifiers list: the config must accept exactly what ParseIdentifiers and
// the challenge accept, agree with them on the result, and ParseIdentifier
// must be idempotent on what it returns.
func FuzzIdentifiers(f *testing.F) {
	for _, seed := range [][2]string{
		{"example.org", "www.example.org"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"*.example.org", "example.org"},
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"[2001:db8::1]", "2001:DB8::1"},
		{"Example.ORG.", "example.org"},
		{"exa mple.org", "a..b"},
		{"ǅ.example", "ß.example"},
		{"fe80::1%eth0", "*.*.example"},
	} {
		f.Add(seed[0], seed[1], uint8(0))
		f.Add(seed[0], seed[1], uint8(3))
	}
	f.Fuzz(func(t *testing.T, a, b string, chal uint8) {
		for _, s := range []string{a, b} {
			if id, err := certfleet.ParseIdentifier(s); err == nil {
				again, err := certfleet.ParseIdentifier(id.Value)
				if err != nil || again != id {
					t.Fatalf("ParseIdentifier(%q) = %+v, but ParseIdentifier(%q) = %+v, %v", s, id, id.Value, again, err)
				}
			}
		}
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			// A TOML document cannot carry invalid UTF-8. (ParseIdentifier
			// itself accepts it, turning "0.\x8c" into "0.xn--zn7c":
			// testdata/fuzz/FuzzIdentifiers/4ace7315f978b13b.)
			t.Skip("invalid UTF-8")
		}
		ct := certfleet.ChallengeTypes[int(chal)%len(certfleet.ChallengeTypes)]
		doc := map[string]any{
			"ca": map[string]any{"directory": "letsencrypt"},
			"certificate": []map[string]any{{
				"name":        "x",
				"identifiers": []string{a, b},
				"challenge":   string(ct),
				"webroot":     "/var/www",
			}},
		}
		if ct == certfleet.ChallengeDNS01 {
			doc["dns01"] = map[string]any{"providers": map[string]any{"hook": map[string]any{"type": "exec", "program": "/usr/local/bin/dns-hook"}}}
		}
		if ct != certfleet.ChallengeWebroot {
			delete(doc["certificate"].([]map[string]any)[0], "webroot")
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
			t.Fatalf("encode %q: %v", doc, err)
		}

		want, wantErr := certfleet.ParseIdentifiers([]string{a, b})
		if wantErr == nil {
			for _, id := range want {
				if wantErr = ct.CanProve(id); wantErr != nil {
					break
				}
			}
		}
		cfg, err := Parse("fuzz.toml", buf.Bytes())
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("config %q: Parse error %v, but ParseIdentifiers/CanProve error %v", buf.String(), err, wantErr)
		}
		if err != nil {
			return
		}
		checkConfig(t, cfg)
		got := cfg.Specs()[0].Identifiers
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("identifiers %+v, want %+v", got, want)
		}
	})
}

// FuzzScanPositions checks that the position scanner terminates without
// panicking on any input and, on valid TOML, finds every key the TOML
// parser found.
func FuzzScanPositions(f *testing.F) {
	example, err := os.ReadFile("../examples/certfleet.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	for _, tc := range problemCases {
		f.Add(tc.src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		defer watchdog(src)()
		pos := scanPositions(src)
		var m map[string]any
		md, err := toml.Decode(src, &m)
		if err != nil {
			return
		}
		found := make(map[string]bool, len(pos))
		for p := range pos {
			found[stripIndexes(p)] = true
		}
		for _, k := range md.Keys() {
			p := make(path, 0, len(k))
			for _, part := range k {
				p = p.key(part)
			}
			if !found[p.String()] {
				t.Fatalf("key %s not found by the scanner; found:\n%s", p, pos.debugString())
			}
		}
	})
}

// stripIndexes removes the [n] segments from a rendered path. Quoted keys
// containing brackets are rare enough in fuzzing to accept the imprecision.
func stripIndexes(p string) string {
	var b strings.Builder
	inQuote := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '"' && (i == 0 || p[i-1] != '\\'):
			inQuote = !inQuote
		case c == '[' && !inQuote:
			for i < len(p) && p[i] != ']' {
				i++
			}
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// watchdog crashes the fuzz worker when one input runs for 10 seconds: Go's
// fuzzer has no hang detection, and a crash makes it save the input. Call as
// defer watchdog(input)().
func watchdog[T string | []byte](input T) (stop func()) {
	t := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("input ran for 10s: %q", input)) })
	return func() { t.Stop() }
}
