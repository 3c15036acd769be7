package sqlite

import "github.com/certfleet/certfleet/seal"

// sealKey returns the stored form of a PEM private key (see
// sqlstore's sealKey).
func (s *Store) sealKey(pemKey, aad []byte) ([]byte, error) { return s.Keyring().Seal(pemKey, aad) }

// openKey reverses sealKey.
func (s *Store) openKey(stored, aad []byte) ([]byte, error) { return s.Keyring().Open(stored, aad) }

func pendingKeyAAD(spec, keyType, orderURL string) []byte {
	return seal.PendingKeyAAD(spec, keyType, orderURL)
}

func issuanceAAD(spec, keyType, fingerprint string) []byte {
	return seal.IssuanceKeyAAD(spec, keyType, fingerprint)
}
