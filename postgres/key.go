package postgres

// sealKey, openKey and erasedKey are the only way private keys (issuance
// keys, pending order keys, account keys) enter, leave and are erased from
// the database, so that encryption at rest can be added here without
// touching the queries. Today they store the PEM as it is: restrict access
// to the database (its role, its backups) as you would the keys themselves.
//
// None of them may put key material into an error message.

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

// erasedKey is what a destroyed private key is overwritten with
// (WithdrawSpec with destroyKeys): NULL, as for no key at all, so openKey
// gives nil and nothing of the key remains in the row. Encryption at rest
// must keep it so: erasing a key overwrites its sealed bytes rather than
// relying on a data key that other, live keys share.
func erasedKey() []byte { return nil }
