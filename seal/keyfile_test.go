package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/seal"
)

func TestMasterKeyFile(t *testing.T) {
	dir := t.TempDir()
	raw, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != seal.MasterKeySize || bytes.Equal(raw, make([]byte, seal.MasterKeySize)) {
		t.Fatalf("GenerateMasterKey = %d bytes, all zero or short", len(raw))
	}
	want, _ := seal.NewLocalKey(raw)
	path := filepath.Join(dir, "master.key")
	if err := seal.WriteMasterKeyFile(path, raw); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("written key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	content, _ := os.ReadFile(path)
	if got := string(content); got != base64.StdEncoding.EncodeToString(raw)+"\n" {
		t.Fatalf("key file holds %d bytes, want base64 and a newline", len(got))
	}
	k, err := seal.LoadMasterKeyFile(path)
	if err != nil || k.ID() != want.ID() {
		t.Fatalf("LoadMasterKeyFile = %v, %v; want ID %s", k, err, want.ID())
	}
	if err := seal.WriteMasterKeyFile(path, raw); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("WriteMasterKeyFile over an existing file = %v, want a refusal", err)
	}

	write := func(t *testing.T, name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // not subject to umask
			t.Fatal(err)
		}
		return p
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr error  // nil: loads
		wantIn  string // in the error
	}{
		{"base64 0600", b64 + "\n", 0o600, nil, ""},
		{"base64 0400 no newline", b64, 0o400, nil, ""},
		{"hex with spaces", "  " + hex.EncodeToString(raw) + " \r\n", 0o600, nil, ""},
		{"group readable", b64, 0o640, seal.ErrInsecureKeyFile, "mode 0640"},
		{"world readable", b64, 0o604, seal.ErrInsecureKeyFile, "chmod 600"},
		{"group writable", b64, 0o620, seal.ErrInsecureKeyFile, "0620"},
		{"world executable", b64, 0o601, seal.ErrInsecureKeyFile, "0601"},
		{"short", b64[:40], 0o600, nil, "40 characters"},
		{"not base64", strings.Repeat("!", 44), 0o600, nil, "neither valid base64"},
		{"two keys", b64 + "\n" + b64 + "\n", 0o600, nil, "89 characters"},
		{"empty", "", 0o600, nil, "0 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, strings.ReplaceAll(tc.name, " ", "_"), tc.content, tc.mode)
			k, err := seal.LoadMasterKeyFile(p)
			if tc.wantIn == "" {
				if err != nil || k.ID() != want.ID() {
					t.Fatalf("LoadMasterKeyFile = %v, %v; want ID %s", k, err, want.ID())
				}
				return
			}
			if err == nil || k != nil {
				t.Fatalf("LoadMasterKeyFile = %v, nil; want an error", k)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantIn) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q should name the file and say %q", err, tc.wantIn)
			}
			assertNoSecret(t, err.Error(), raw, []byte(b64))
		})
	}
	t.Run("directory", func(t *testing.T) {
		sub := filepath.Join(dir, "sub")
		os.Mkdir(sub, 0o700)
		if _, err := seal.LoadMasterKeyFile(sub); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("LoadMasterKeyFile(directory) = %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := seal.LoadMasterKeyFile(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("LoadMasterKeyFile(missing) = %v, want ErrNotExist", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		p := write(t, "large", strings.Repeat(b64+"\n", 200), 0o600)
		if _, err := seal.LoadMasterKeyFile(p); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("LoadMasterKeyFile(large) = %v", err)
		}
	})
}

func TestLocalKeyFromText(t *testing.T) {
	raw, _ := seal.GenerateMasterKey()
	want, _ := seal.NewLocalKey(raw)
	for _, text := range []string{seal.EncodeMasterKey(raw), strings.TrimSpace(seal.EncodeMasterKey(raw)), hex.EncodeToString(raw)} {
		k, err := seal.LocalKeyFromText(text, "environment variable CERTFLEET_MASTER_KEY")
		if err != nil || k.ID() != want.ID() {
			t.Fatalf("LocalKeyFromText = %v, %v", k, err)
		}
	}
	_, err := seal.LocalKeyFromText("short", "environment variable CERTFLEET_MASTER_KEY")
	if err == nil || !strings.Contains(err.Error(), "CERTFLEET_MASTER_KEY") {
		t.Fatalf("LocalKeyFromText(bad) = %v; want an error naming the source", err)
	}
	if _, err := seal.NewLocalKey(raw[:16]); err == nil {
		t.Fatal("NewLocalKey accepted a 16-byte key")
	}
	other, _ := seal.GenerateMasterKey()
	ok, _ := seal.NewLocalKey(other)
	if ok.ID() == want.ID() || !strings.HasPrefix(ok.ID(), "local:") || len(ok.ID()) != len("local:")+16 {
		t.Fatalf("IDs %s and %s: want distinct local:<16 hex digits>", ok.ID(), want.ID())
	}
}
