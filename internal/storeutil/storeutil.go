// Package storeutil holds what the stores (sqlite, postgres) share beyond
// their SQL: rules that must read the same in both, kept once here instead
// of copied into each.
package storeutil

import (
	"errors"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/seal"
)

// SealSecret is how a store seals a stored secret (certfleet.SecretStore):
// always sealed, bound to its name; a store without a master key refuses
// it with an error saying what to set.
func SealSecret(k seal.Keyring, name string, value []byte) ([]byte, error) {
	b, err := k.SealSecret(name, value)
	if errors.Is(err, seal.ErrNoSealer) {
		return nil, certfleet.ErrSecretsNeedMasterKey(name)
	}
	return b, err
}

// OpenSecret reverses SealSecret. A value stored in the clear is refused,
// not trusted: nothing certfleet writes puts one there.
func OpenSecret(k seal.Keyring, name string, stored []byte) ([]byte, error) {
	b, err := k.OpenSecret(name, stored)
	if errors.Is(err, seal.ErrNotSealed) {
		return nil, certfleet.Errorf(certfleet.EINTERNAL, "secret %q is stored unsealed, which certfleet never does; set it again with `certfleet secret set %s`", name, name)
	}
	return b, err
}
