package certfleet

import (
	"context"
	"regexp"
	"strings"
	"time"
)

// SecretRefPrefix marks a config value that names a secret kept in the store
// instead of holding it: `secret = "store:tsig-example"`. A config file kept
// in Git then holds no secret, and the secret is sealed in the database like
// every private key (docs/keys-at-rest.md).
const SecretRefPrefix = "store:"

// SecretRef reports whether a config value is a reference to a stored secret
// and, if so, the secret's name.
func SecretRef(value string) (name string, ok bool) {
	return strings.CutPrefix(value, SecretRefPrefix)
}

var secretNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateSecretName checks a stored secret's name: 1 to 64 lower-case
// letters, digits, '.', '_' or '-', starting with a letter or digit.
func ValidateSecretName(name string) error {
	if !secretNameRE.MatchString(name) {
		return Errorf(EINVALID, "secret name %q: use 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// MaxSecretLen bounds a stored secret. TSIG keys, EAB MAC keys, passwords
// and bearer tokens are short; the largest are acme-dns providers'
// registrations, about 250 bytes per identifier.
const MaxSecretLen = 1 << 20

// SecretInfo describes a stored secret without its value.
type SecretInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SecretStore keeps named secrets (TSIG secrets, EAB MAC keys, DNS API
// passwords) sealed under the store's data key, so a database dump holds
// none of them readable. A store opened without a master key refuses to
// keep secrets (EINVALID): they would be stored in the clear.
type SecretStore interface {
	// PutSecret stores value under name, replacing any earlier value.
	PutSecret(ctx context.Context, name string, value []byte) error
	// Secret returns the value of name, or ENOTFOUND.
	Secret(ctx context.Context, name string) ([]byte, error)
	// Secrets lists the stored secrets by name, without their values.
	Secrets(ctx context.Context) ([]SecretInfo, error)
	// DeleteSecret removes name; ENOTFOUND when there is none.
	DeleteSecret(ctx context.Context, name string) error
}

// CheckSecret validates a secret before it is stored: its name, and a value
// that is neither empty nor larger than MaxSecretLen. The message never
// quotes the value.
func CheckSecret(name string, value []byte) error {
	if err := ValidateSecretName(name); err != nil {
		return err
	}
	switch {
	case len(value) == 0:
		return Errorf(EINVALID, "secret %q: the value is empty", name)
	case len(value) > MaxSecretLen:
		return Errorf(EINVALID, "secret %q: the value is %d bytes, more than the %d allowed", name, len(value), MaxSecretLen)
	}
	return nil
}

// ErrSecretsNeedMasterKey is returned by stores opened without a master key.
func ErrSecretsNeedMasterKey(name string) error {
	return Errorf(EINVALID, "secret %q: the store has no master key, so it cannot keep secrets sealed; "+
		"set master_key_file (or CERTFLEET_MASTER_KEY; see `certfleet master-key generate`) or keep the secret in the config file", name)
}
