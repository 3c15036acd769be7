package postgres

import "github.com/certfleet/certfleet/seal"

// sealKey returns the stored form of a PEM private key (see
// sqlstore's sealKey).
func (s *Store) sealKey(pemKey, aad []byte) ([]byte, error) { return s.Keyring().Seal(pemKey, aad) }

// openKey reverses sealKey.
func (s *Store) openKey(stored, aad []byte) ([]byte, error) { return s.Keyring().Open(stored, aad) }

// erasedKey is what a destroyed private key is overwritten with
// (WithdrawSpec with destroyKeys): NULL, as for no key at all.
func erasedKey() []byte { return nil }

func pendingKeyAAD(spec, keyType, orderURL string) []byte {
	return seal.PendingKeyAAD(spec, keyType, orderURL)
}

func issuanceAAD(spec, keyType, fingerprint string) []byte {
	return seal.IssuanceKeyAAD(spec, keyType, fingerprint)
}
