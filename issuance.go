package certfleet

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"iter"
	"log/slog"
	"time"
)

// Issuance is one certificate as issued: a row of the archive, which is never
// deleted. The newest issuance of a Job is its current certificate.
type Issuance struct {
	ID           int64
	Spec         string
	KeyType      KeyType
	SpecRevision string // the CertificateSpec.Revision it was made for
	Identifiers  []Identifier
	Serial       string // hex, lower case
	Fingerprint  string // SHA-256 of the leaf's DER, hex
	NotBefore    time.Time
	NotAfter     time.Time
	// ChainPEM is the leaf followed by the intermediates, as the CA sent it.
	ChainPEM []byte
	// KeyPEM is the private key (PKCS #8 PEM). Empty when the key is held
	// elsewhere (CSR mode). Never logged.
	KeyPEM     []byte
	ARICertID  string // RFC 9773 §4.1 unique identifier
	CA         string // directory URL
	AccountURL string
	OrderURL   string
	CertURL    string
	IssuedAt   time.Time
	Replaces   int64 // ID of the issuance this one renewed, 0 for none
	// Tenant is the tenant of the spec when the certificate was ordered
	// ("" the operator's): the authorization rule (Token.MayRead) is
	// applied to the certificate as issued too, so one made for a
	// customer is never served to another that took over its names.
	Tenant string
}

// LogValue keeps the key (and the bulky chain) out of logs.
func (i Issuance) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("id", i.ID),
		slog.String(LogCertificate, i.Spec),
		slog.String(LogKeyType, string(i.KeyType)),
		slog.String(LogSerial, i.Serial),
		slog.Time(LogNotAfter, i.NotAfter),
	)
}

// Leaf parses the end-entity certificate of the chain.
func (i Issuance) Leaf() (*x509.Certificate, error) {
	certs, err := ParseChain(i.ChainPEM)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// SplitChain returns the leaf and the rest of the chain as separate PEM
// documents (certbot's cert.pem and chain.pem).
func (i Issuance) SplitChain() (leaf, chain []byte, err error) {
	for k, block := range certificateBlocks(i.ChainPEM) {
		enc := pem.EncodeToMemory(block)
		if k == 0 {
			leaf = enc
		} else {
			chain = append(chain, enc...)
		}
	}
	if leaf == nil {
		return nil, nil, fmt.Errorf("issuance %d: no certificate in chain", i.ID)
	}
	return leaf, chain, nil
}

// ParseChain decodes every CERTIFICATE block of a PEM chain, leaf first.
func ParseChain(chainPEM []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for k, block := range certificateBlocks(chainPEM) {
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d of chain: %w", k+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate found in PEM chain")
	}
	return certs, nil
}

// certificateBlocks yields the CERTIFICATE blocks of PEM data, numbered from
// 0, skipping other block types.
func certificateBlocks(data []byte) iter.Seq2[int, *pem.Block] {
	return func(yield func(int, *pem.Block) bool) {
		k := 0
		for rest := data; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				return
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			if !yield(k, block) {
				return
			}
			k++
		}
	}
}

// Fingerprint returns the hex SHA-256 of a certificate's DER encoding.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// IssuanceFilter selects archive rows. Zero fields match everything; Limit 0
// means no limit. Results are newest first.
type IssuanceFilter struct {
	Spec    string
	KeyType KeyType
	Limit   int
}

// ArchiveStore reads the archive of issued certificates.
type ArchiveStore interface {
	// Issuance returns one issuance by ID, or ENOTFOUND.
	Issuance(ctx context.Context, id int64) (Issuance, error)
	// Issuances lists issuances, newest first.
	Issuances(ctx context.Context, f IssuanceFilter) ([]Issuance, error)
}
