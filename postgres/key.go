package postgres

// sealKey and openKey are the only way private keys (issuance keys, pending
// order keys, account keys) enter and leave the database, so that encryption
// at rest can be added here without touching the queries. Today they store
// the PEM as it is: restrict access to the database (its role, its backups)
// as you would the keys themselves.
//
// Neither function may put key material into an error message.

// sealKey returns the form of a PEM private key that is stored; nil or empty
// input is stored as NULL.
func sealKey(pemKey []byte) ([]byte, error) {
	if len(pemKey) == 0 {
		return nil, nil
	}
	return pemKey, nil
}

// openKey reverses sealKey; NULL (nil) gives nil.
func openKey(stored []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, nil
	}
	return stored, nil
}
