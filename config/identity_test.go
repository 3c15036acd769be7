package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

func TestParseIdentities(t *testing.T) {
	const base = "[ca]\ndirectory = \"https://ca.test/dir\"\n[[certificate]]\nname = \"api\"\nidentifiers = [\"api.example.org\"]\n" +
		"[api]\nlisten = \":8555\"\ntls_certificate = \"api\"\n"
	cfg := mustParse(t, base)
	if cfg.Identities.Lifetime != 0 || cfg.Identities.RequireClientCertForKeys || cfg.Identities.ClientCAFile != "" {
		t.Fatalf("defaults: %+v", cfg.Identities)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "clients.pem")
	if err := os.WriteFile(ca, selfSignedPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = mustParse(t, base+`[identities]
lifetime = "12h"
require_client_cert_for_keys = true
client_ca_file = "`+ca+`"
[[identities.subject]]
subject = "CN=web1.example.org,O=Example"
names = ["web1.example.org"]
`)
	id := cfg.Identities
	if id.Lifetime != 12*time.Hour || !id.RequireClientCertForKeys || id.ClientCAFile != ca || len(id.Subjects) != 1 ||
		id.Subjects[0].Subject != "CN=web1.example.org,O=Example" || id.Subjects[0].Permissions[0] != certfleet.PermReadKeys {
		t.Fatalf("parsed: %+v", id)
	}
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("nothing"), 0o644)
	for _, tc := range []struct{ src, want string }{
		{"[identities]\nlifetime = \"1m\"\n", `certfleet.toml:10: identities.lifetime: "1m" is out of range`},
		{"[identities]\nrequire_client_cert_for_keys = \"yes\"\n", "must be true or false"},
		{"[identities]\nclient_ca_file = \"" + empty + "\"\n", "holds no PEM certificate"},
		{"[identities]\nclient_ca_file = \"" + filepath.Join(dir, "missing.pem") + "\"\n", "no such file"},
		{"[identities]\n[[identities.subject]]\nsubject = \"CN=x\"\nnames = [\"x.example\"]\n", "set client_ca_file too"},
		{"[identities]\nclient_ca_file = \"" + ca + "\"\n[[identities.subject]]\nsubject = \"CN=x\"\nnames = [\"x.example\"]\npermissions = [\"admin\"]\n", "cannot hold admin"},
		{"[identities]\nclient_ca_file = \"" + ca + "\"\n[[identities.subject]]\nsubject = \"CN=x\"\n", "required: the name patterns"},
		{"[identities]\nlifetme = \"1h\"\n", "unknown key lifetme"},
	} {
		_, err := Parse("certfleet.toml", []byte(base+tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.src, err, tc.want)
		}
	}
	// The switch needs TLS on the API.
	_, err := Parse("certfleet.toml", []byte("[ca]\ndirectory = \"https://ca.test/dir\"\n[api]\nlisten = \"127.0.0.1:8555\"\n[identities]\nrequire_client_cert_for_keys = true\n"))
	if err == nil || !strings.Contains(err.Error(), "tls_certificate") {
		t.Errorf("require_client_cert_for_keys without TLS: %v", err)
	}
}

// selfSignedPEM is a CA certificate of its own, as an operator's client CA.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clients CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
