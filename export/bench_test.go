package export_test

import (
	"bytes"
	"testing"

	"github.com/certfleet/certfleet/export"
)

// BenchmarkVault: the cost of one key's vault file, written and checked.
// An export decrypts every key file it finds to see whether it changed, so
// an unchanged run costs about one Decrypt per exported key (PBKDF2's
// 10000 iterations dominate).
func BenchmarkVault(b *testing.B) {
	key := bytes.Repeat([]byte("k"), 241) // an ECDSA P-256 key's PKCS #8 PEM
	enc, err := export.EncryptVault(key, password)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Encrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := export.EncryptVault(key, password); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := export.DecryptVault(enc, password); err != nil {
				b.Fatal(err)
			}
		}
	})
}
