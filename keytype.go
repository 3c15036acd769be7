package certfleet

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// KeyType names the algorithm and size of a certificate's private key.
type KeyType string

// Supported key types.
const (
	RSA2048   KeyType = "rsa2048"
	RSA3072   KeyType = "rsa3072"
	RSA4096   KeyType = "rsa4096"
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
)

// KeyTypes lists every supported key type, in documentation order.
var KeyTypes = []KeyType{RSA2048, RSA3072, RSA4096, ECDSAP256, ECDSAP384}

// ParseKeyType parses a key type name (case-insensitive).
func ParseKeyType(s string) (KeyType, error) {
	k := KeyType(strings.ToLower(strings.TrimSpace(s)))
	for _, known := range KeyTypes {
		if k == known {
			return k, nil
		}
	}
	names := make([]string, len(KeyTypes))
	for i, kt := range KeyTypes {
		names[i] = string(kt)
	}
	return "", fmt.Errorf("unknown key type %q (use one of %s)", s, strings.Join(names, ", "))
}

// Family returns "rsa" or "ecdsa": dual certificates hold one of each.
func (k KeyType) Family() string {
	if strings.HasPrefix(string(k), "rsa") {
		return "rsa"
	}
	return "ecdsa"
}

// GenerateKey makes a new private key of type k.
func GenerateKey(k KeyType) (crypto.Signer, error) {
	switch k {
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("unknown key type %q", k)
}

// KeyTypeOf returns the key type of a public key, or an error for keys
// certfleet does not issue for.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		switch p.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		case 4096:
			return RSA4096, nil
		}
		return "", fmt.Errorf("RSA key of %d bits (use 2048, 3072 or 4096)", p.N.BitLen())
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
		return "", fmt.Errorf("ECDSA key on curve %s (use P-256 or P-384)", p.Curve.Params().Name)
	}
	return "", fmt.Errorf("unsupported public key type %T", pub)
}

// MarshalPrivateKey encodes a private key as a PKCS #8 PEM block, the form
// nginx, HAProxy, Apache, Go and OpenSSL all read.
func MarshalPrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM private key in PKCS #8, PKCS #1 (RSA) or SEC 1
// (EC) form. Errors never include the key material.
func ParsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("no PEM block found in private key data")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block of type %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: malformed key", block.Type)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}
