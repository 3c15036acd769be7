package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/certfleet/certfleet"
)

const issuanceColumns = `id, spec, key_type, spec_revision, identifiers, serial, fingerprint, not_before, not_after,
	chain_pem, key_pem, ari_cert_id, ca, account_url, order_url, cert_url, issued_at, replaces, tenant`

var (
	qInsertIssuance = SQL(`INSERT INTO issuances (spec, key_type, spec_revision, identifiers, serial, fingerprint,
		not_before, not_after, chain_pem, key_pem, ari_cert_id, ca, account_url, order_url, cert_url, issued_at, replaces, tenant)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id`)
	qIssuance  = SQL(`SELECT ` + issuanceColumns + ` FROM issuances WHERE id = $1`)
	qIssuances = SQL(`SELECT ` + issuanceColumns + ` FROM issuances
		WHERE ($1 = '' OR spec = $1) AND ($2 = '' OR key_type = $2) ORDER BY id DESC LIMIT $3`)
)

// insertIssuance adds iss to the archive in the caller's transaction and
// returns its ID.
func (s *Store) insertIssuance(tx Tx, iss certfleet.Issuance) (int64, error) {
	ids, err := json.Marshal(iss.Identifiers)
	if err != nil {
		return 0, fmt.Errorf("encode identifiers: %w", err)
	}
	key, err := s.sealKey(iss.KeyPEM, issuanceAAD(iss.Spec, string(iss.KeyType), iss.Fingerprint))
	if err != nil {
		return 0, err
	}
	var replaces any
	if iss.Replaces != 0 {
		replaces = iss.Replaces
	}
	chain := iss.ChainPEM
	if chain == nil {
		chain = []byte{}
	}
	var id int64
	err = tx.QueryRow(qInsertIssuance,
		iss.Spec, string(iss.KeyType), iss.SpecRevision, string(ids), iss.Serial, iss.Fingerprint,
		NullTime(iss.NotBefore), NullTime(iss.NotAfter), chain, key, iss.ARICertID, iss.CA, iss.AccountURL, iss.OrderURL,
		iss.CertURL, NullTime(iss.IssuedAt), replaces, iss.Tenant).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("archive issuance: %w", err)
	}
	return id, nil
}

// scanIssuance reads a row of issuanceColumns.
func (s *Store) scanIssuance(r Row) (certfleet.Issuance, error) {
	var (
		iss      certfleet.Issuance
		kt, ids  string
		replaces *int64
		key      []byte
	)
	err := r.Scan(&iss.ID, &iss.Spec, &kt, &iss.SpecRevision, &ids, &iss.Serial, &iss.Fingerprint, &iss.NotBefore, &iss.NotAfter,
		&iss.ChainPEM, &key, &iss.ARICertID, &iss.CA, &iss.AccountURL, &iss.OrderURL, &iss.CertURL, &iss.IssuedAt, &replaces, &iss.Tenant)
	if err != nil {
		return iss, err
	}
	iss.KeyType = certfleet.KeyType(kt)
	if err := json.Unmarshal([]byte(ids), &iss.Identifiers); err != nil {
		return iss, fmt.Errorf("decode identifiers of issuance %d: %w", iss.ID, err)
	}
	if replaces != nil {
		iss.Replaces = *replaces
	}
	if iss.KeyPEM, err = s.openKey(key, issuanceAAD(iss.Spec, string(iss.KeyType), iss.Fingerprint)); err != nil {
		return iss, fmt.Errorf("open key of issuance %d: %w", iss.ID, err)
	}
	return iss, nil
}

// Issuance implements certfleet.ArchiveStore.
func (s *Store) Issuance(ctx context.Context, id int64) (certfleet.Issuance, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.Issuance{}, err
	}
	iss, err := s.scanIssuance(q.QueryRow(qIssuance, id))
	if noRows(err) {
		return iss, certfleet.Errorf(certfleet.ENOTFOUND, "issuance %d not found", id)
	} else if err != nil {
		return iss, fmt.Errorf("load issuance %d: %w", id, err)
	}
	return iss, nil
}

// Issuances implements certfleet.ArchiveStore. Newest first means in the
// order they were archived, newest first (by ID).
func (s *Store) Issuances(ctx context.Context, f certfleet.IssuanceFilter) ([]certfleet.Issuance, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	limit := int64(noLimit)
	if f.Limit > 0 {
		limit = int64(f.Limit)
	}
	rows, err := q.Query(qIssuances, f.Spec, string(f.KeyType), limit)
	if err != nil {
		return nil, fmt.Errorf("list issuances: %w", err)
	}
	defer rows.Close()
	var out []certfleet.Issuance
	for rows.Next() {
		iss, err := s.scanIssuance(rows)
		if err != nil {
			return nil, fmt.Errorf("list issuances: %w", err)
		}
		out = append(out, iss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list issuances: %w", err)
	}
	return out, nil
}
