package certfleet_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestFormatSerialMatchesOpenSSL guards issue 15, finding 8: serials were
// printed unpadded and lowercase ("f1…" where openssl prints "0F1…"), so
// hooks comparing them with openssl's output failed 1 time in 16. Every
// serial, from the store's form, must print exactly as the real
// openssl x509 -serial prints it, for many certificates including ones
// whose first nibble is zero, whose top bit is set (DER adds a 0x00) and
// tiny ones.
func TestFormatSerialMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl not installed; CI must have it")
		}
		t.Skip("openssl not installed")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serials := []*big.Int{big.NewInt(1), big.NewInt(0x0f), big.NewInt(0x80), big.NewInt(0xff), big.NewInt(0x100)}
	leadingZero, _ := new(big.Int).SetString("0abcdef0123456789abcdef0123456789", 16) // 33 digits: a leading-zero nibble
	highBit, _ := new(big.Int).SetString("f0123456789abcdef0123456789abcde", 16)
	serials = append(serials, leadingZero, highBit)
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for range 57 {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, n.Add(n, big.NewInt(1)))
	}
	odd := 0
	dir := t.TempDir()
	for i, n := range serials {
		stored := certfleet.StoredSerial(n)
		if len(stored)%2 == 1 {
			odd++
		}
		tmpl := &x509.Certificate{SerialNumber: n, Subject: pkix.Name{CommonName: "serial.test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "c.pem")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(openssl, "x509", "-in", path, "-noout", "-serial").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl: %v: %s", err, out)
		}
		want := strings.TrimPrefix(strings.TrimSpace(string(out)), "serial=")
		if got := certfleet.FormatSerial(stored); got != want {
			t.Errorf("serial %d: FormatSerial(%q) = %q, openssl prints %q", i, stored, got, want)
		}
		if got := certfleet.SerialString(n); got != want {
			t.Errorf("serial %d: SerialString = %q, openssl prints %q", i, got, want)
		}
		// A value stored before this change (the store's form) is the
		// same serial as openssl's.
		if !certfleet.SameSerial(stored, want) || !certfleet.SameSerial(want, stored) {
			t.Errorf("serial %d: SameSerial(%q, %q) = false", i, stored, want)
		}
	}
	if odd == 0 {
		t.Fatal("no serial with an odd number of digits in the stored form: the test proves nothing")
	}
}

func TestFormatSerial(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"stored odd", "f1a", "0F1A"},
		{"stored even", "ab", "AB"},
		{"already openssl", "0F1A", "0F1A"},
		{"colons", "0f:1a", "0F1A"},
		{"0x", "0xf1a", "0F1A"},
		{"zero", "0", "00"},
		{"empty", "", ""},
		{"not hex", "n/a", "n/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := certfleet.FormatSerial(tc.in); got != tc.want {
				t.Errorf("FormatSerial(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if certfleet.SameSerial("f1a", "0F1B") {
		t.Error("SameSerial(f1a, 0F1B) = true")
	}
	if !certfleet.SameSerial("x", "x") || certfleet.SameSerial("x", "y") {
		t.Error("SameSerial of non-hex values is not equality")
	}
}
