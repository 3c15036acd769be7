package export_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/export"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// password is the one testdata/ansible-vault-*.txt were encrypted with, by
// ansible-vault 2.14 (Debian's ansible 7.7): "ansible-vault encrypt" (1.1)
// and "ansible-vault encrypt --vault-id prod@FILE" (1.2).
var password = []byte("correct horse battery staple")

// TestDecryptAnsibleVaultKnownAnswer: files ansible-vault wrote decrypt to
// their plaintext; a wrong password or a changed byte is refused.
func TestDecryptAnsibleVaultKnownAnswer(t *testing.T) {
	want, err := os.ReadFile("testdata/ansible-vault-1.1.plain")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ansible-vault-1.1.txt", "ansible-vault-1.2.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := export.DecryptVault(data, password)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: DecryptVault = %q, %v; want %q", name, got, err, want)
		}
		if _, err := export.DecryptVault(data, []byte("wrong")); !errors.Is(err, export.ErrVaultPassword) {
			t.Errorf("%s with a wrong password: %v; want ErrVaultPassword", name, err)
		}
		// A hex digit of the ciphertext changed (the end of the body).
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		last := []byte(lines[len(lines)-1])
		last[len(last)-3] ^= 1 // '0'↔'1', 'a'↔'`'...: stays hex for digits
		if last[len(last)-3] < '0' || last[len(last)-3] > 'f' {
			last[len(last)-3] = '0'
		}
		lines[len(lines)-1] = string(last)
		if _, err := export.DecryptVault([]byte(strings.Join(lines, "\n")), password); err == nil {
			t.Errorf("%s with a changed byte decrypted", name)
		}
	}
	for _, bad := range []string{"", "plain text\n", "$ANSIBLE_VAULT;1.1;AES\n00\n", "$ANSIBLE_VAULT;1.1;AES256\nzz\n", "$ANSIBLE_VAULT;1.1;AES256\n6162\n"} {
		if _, err := export.DecryptVault([]byte(bad), password); err == nil {
			t.Errorf("DecryptVault(%q) succeeded", bad)
		}
	}
}

// TestVaultRoundTrip: what EncryptVault writes has ansible-vault's form
// (header, 80-column hex lines, final newline), decrypts to the
// plaintext at every length around the AES block (the PKCS #7 padding),
// and differs each time (a fresh salt).
func TestVaultRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 1000} {
		plain := bytes.Repeat([]byte{'k'}, n)
		enc, err := export.EncryptVault(plain, password)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(enc), "\n")
		if lines[0] != "$ANSIBLE_VAULT;1.1;AES256" || lines[len(lines)-1] != "" {
			t.Fatalf("len %d: envelope %q", n, enc)
		}
		for i, l := range lines[1 : len(lines)-1] {
			if len(l) > 80 || len(l) == 0 || i < len(lines)-3 && len(l) != 80 {
				t.Fatalf("len %d: line %d has %d characters; want 80 (the last at most 80)", n, i+1, len(l))
			}
		}
		got, err := export.DecryptVault(enc, password)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("len %d: round trip = %q, %v", n, got, err)
		}
		again, _ := export.EncryptVault(plain, password)
		if bytes.Equal(again, enc) {
			t.Fatalf("len %d: two encryptions are equal; want a fresh salt each time", n)
		}
	}
	if _, err := export.EncryptVault([]byte("x"), nil); err == nil {
		t.Error("EncryptVault with no password succeeded")
	}
}

// TestVaultDecryptedByAnsibleVault (issue 18 §3): the real ansible-vault
// decrypts what EncryptVault writes, and what it encrypts itself decrypts
// here.
func TestVaultDecryptedByAnsibleVault(t *testing.T) {
	daemontest.AnsibleVault(t)
	dir := t.TempDir()
	pwfile := filepath.Join(dir, "vault-password")
	if err := os.WriteFile(pwfile, append(password, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{16, 3001} { // a whole padding block, and a key's size
		plain := bytes.Repeat([]byte("-----BEGIN PRIVATE KEY-----\n"), n)[:n]
		enc, err := export.EncryptVault(plain, password)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "key.vault")
		if err := os.WriteFile(path, enc, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := daemontest.VaultView(t, path, pwfile); !bytes.Equal(got, plain) {
			t.Errorf("len %d: ansible-vault decrypted %q, want %q", n, got, plain)
		}

		// And the other way.
		src := filepath.Join(dir, "plain")
		if err := os.WriteFile(src, plain, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ansible-vault", "encrypt", "--vault-password-file", pwfile, src)
		cmd.Env = append(os.Environ(), "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ansible-vault encrypt: %v\n%s", err, out)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := export.DecryptVault(data, password); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("len %d: DecryptVault of ansible-vault's file = %q, %v", n, got, err)
		}
	}
}

// FuzzDecryptVault: any input is refused with an error or decrypted,
// never a panic.
func FuzzDecryptVault(f *testing.F) {
	for _, name := range []string{"ansible-vault-1.1.txt", "ansible-vault-1.2.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("$ANSIBLE_VAULT;1.1;AES256\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = export.DecryptVault(data, password)
	})
}
