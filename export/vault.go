package export

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Ansible Vault's format 1.1 with the AES256 cipher, as ansible-vault
// writes it (Ansible's documentation, "Vault format"): a header line
//
//	$ANSIBLE_VAULT;1.1;AES256
//
// then the hex form of three lines joined by '\n' — the hex salt, the hex
// HMAC, the hex ciphertext — cut into lines of 80 characters, and a final
// newline. The keys come from PBKDF2-HMAC-SHA256 of the password and the
// 32-byte random salt, 10000 iterations, 80 bytes: the AES-256 key, the
// HMAC-SHA256 key, and the 16-byte initial counter block of AES-256-CTR.
// The plaintext is padded to the AES block with PKCS #7 before it is
// encrypted (CTR needs no padding; the format has it), and the HMAC is
// over the ciphertext.
const (
	vaultHeader     = "$ANSIBLE_VAULT;1.1;AES256"
	vaultIterations = 10000
	vaultSaltLen    = 32
	vaultLineLen    = 80
)

// ErrVaultPassword is what DecryptVault returns when the HMAC does not
// match: the password is wrong, or the file was changed.
var ErrVaultPassword = errors.New("ansible vault: HMAC mismatch: wrong vault password, or the file was altered")

// vaultKeys derives the cipher key, the HMAC key and the initial counter
// block from password and salt.
func vaultKeys(password, salt []byte) (aesKey, hmacKey, iv []byte, err error) {
	k, err := pbkdf2.Key(sha256.New, string(password), salt, vaultIterations, 2*32+aes.BlockSize)
	if err != nil {
		return nil, nil, nil, err
	}
	return k[:32], k[32:64], k[64:], nil
}

// EncryptVault returns plaintext encrypted under password as ansible-vault
// encrypt writes it (format 1.1, AES256), with a fresh random salt: the
// same plaintext encrypts differently each time.
func EncryptVault(plaintext, password []byte) ([]byte, error) {
	if len(password) == 0 {
		return nil, errors.New("ansible vault: empty password")
	}
	salt := make([]byte, vaultSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("ansible vault: salt: %w", err)
	}
	return encryptVault(plaintext, password, salt)
}

func encryptVault(plaintext, password, salt []byte) ([]byte, error) {
	aesKey, hmacKey, iv, err := vaultKeys(password, salt)
	if err != nil {
		return nil, fmt.Errorf("ansible vault: derive keys: %w", err)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize // PKCS #7: 1 to 16 bytes of the count
	padded := append(append(make([]byte, 0, len(plaintext)+pad), plaintext...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	ciphertext := make([]byte, len(padded))
	cipher.NewCTR(block, iv).XORKeyStream(ciphertext, padded)
	m := hmac.New(sha256.New, hmacKey)
	m.Write(ciphertext)
	inner := hex.EncodeToString(salt) + "\n" + hex.EncodeToString(m.Sum(nil)) + "\n" + hex.EncodeToString(ciphertext)
	outer := hex.EncodeToString([]byte(inner))
	var b strings.Builder
	b.WriteString(vaultHeader + "\n")
	for len(outer) > 0 {
		n := min(vaultLineLen, len(outer))
		b.WriteString(outer[:n] + "\n")
		outer = outer[n:]
	}
	return []byte(b.String()), nil
}

// IsVault reports whether data starts with an Ansible Vault header.
func IsVault(data []byte) bool { return bytes.HasPrefix(data, []byte("$ANSIBLE_VAULT;")) }

// DecryptVault returns the plaintext of an Ansible Vault file encrypted
// with AES256 (format 1.1, or 1.2 with a vault ID label) under password.
// A wrong password (or an altered file) is ErrVaultPassword; a file that
// is not such a vault is another error that says what is wrong.
func DecryptVault(data, password []byte) ([]byte, error) {
	header, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !IsVault(header) {
		return nil, errors.New("ansible vault: no $ANSIBLE_VAULT header line")
	}
	fields := strings.Split(strings.TrimSpace(string(header)), ";")
	if len(fields) < 3 || (fields[1] != "1.1" && fields[1] != "1.2") || strings.TrimSpace(fields[2]) != "AES256" {
		return nil, fmt.Errorf("ansible vault: header %q: only format 1.1 or 1.2 with AES256 is read", oneLine(string(header)))
	}
	outer := strings.Join(strings.Fields(string(body)), "")
	inner, err := hex.DecodeString(outer)
	if err != nil {
		return nil, fmt.Errorf("ansible vault: body is not hex: %w", err)
	}
	parts := strings.Split(string(inner), "\n")
	if len(parts) != 3 {
		return nil, fmt.Errorf("ansible vault: want salt, HMAC and ciphertext, found %d part(s)", len(parts))
	}
	salt, err1 := hex.DecodeString(parts[0])
	mac, err2 := hex.DecodeString(parts[1])
	ciphertext, err3 := hex.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("ansible vault: salt, HMAC or ciphertext is not hex: %w", err)
	}
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ansible vault: ciphertext of %d bytes is not whole AES blocks", len(ciphertext))
	}
	aesKey, hmacKey, iv, err := vaultKeys(password, salt)
	if err != nil {
		return nil, fmt.Errorf("ansible vault: derive keys: %w", err)
	}
	m := hmac.New(sha256.New, hmacKey)
	m.Write(ciphertext)
	if !hmac.Equal(m.Sum(nil), mac) {
		return nil, ErrVaultPassword
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, err
	}
	padded := make([]byte, len(ciphertext))
	cipher.NewCTR(block, iv).XORKeyStream(padded, ciphertext)
	pad := int(padded[len(padded)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(padded[len(padded)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, errors.New("ansible vault: bad padding after decryption")
	}
	return padded[:len(padded)-pad], nil
}

// oneLine cuts s to one short line for an error.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}
