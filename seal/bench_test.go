package seal_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"testing"

	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
)

func pkcs8PEM(b *testing.B, key any) []byte {
	b.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func BenchmarkSeal(b *testing.B) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := []struct {
		name string
		pem  []byte
	}{{"P256", pkcs8PEM(b, ec)}, {"RSA2048", pkcs8PEM(b, rk)}}
	raw, _ := seal.GenerateMasterKey()
	k, _ := seal.NewLocalKey(raw)
	s, err := seal.New(b.Context(), seal.Config{Store: new(sealtest.MemDEKStore), KEK: k})
	if err != nil {
		b.Fatal(err)
	}
	aad := seal.AAD("issuances.key_pem", "www.example.org", "ecdsa-p256", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	for _, key := range keys {
		name := fmt.Sprintf("%s-%dB", key.name, len(key.pem))
		b.Run("Seal/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(key.pem)))
			for b.Loop() {
				mustSeal(b, s, key.pem, aad)
			}
		})
		sealed := mustSeal(b, s, key.pem, aad)
		b.Run("Open/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(key.pem)))
			for b.Loop() {
				if _, err := s.Open(sealed, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
