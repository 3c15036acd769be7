package seal

import (
	"context"
	"fmt"
	"time"
)

// WrappedDEK is a data key as a store keeps it: wrapped by a master key.
// Nothing in it is secret without the master key.
type WrappedDEK struct {
	// ID names the data key in every value sealed under it: 1 to 64
	// bytes of [A-Za-z0-9._:-] ("dek-" and 16 hex digits when New makes
	// it). The store's primary key.
	ID string
	// KEKID is the ID of the master key (KeyWrapper.ID) that wrapped it.
	KEKID string
	// Wrapped is the data key as the master key's Wrap returned it.
	Wrapped []byte
	// Created is when the data key was made (UTC); of several, the newest
	// seals new values.
	Created time.Time
}

// DEKStore keeps a store's wrapped data keys (a small table next to the data
// they protect: sqlite and postgres implement it). All methods are safe for
// concurrent use, honour ctx, and are called only by New and Rotate (at start
// and at rotation), never per value.
//
// Why one data key per store rather than one per value: the data key is
// unwrapped once per process start, so reading a key costs no master key (or
// KMS) call, and rotating the master key re-wraps one record instead of
// rewriting every row; a value grows by 49 bytes instead of 110 and more. The
// cost is this interface, and that a stolen data key opens every value of
// its store — but an attacker who can read the process's memory can read the
// private keys themselves. See docs/keys-at-rest.md.
//
// The sealtest subpackage has an in-memory implementation and a contract
// suite (sealtest.RunDEKStore) that every implementation must pass.
type DEKStore interface {
	// DataKeys returns every data key of the store, in any order; an
	// empty store returns none and no error. The slices it returns are the
	// caller's.
	DataKeys(ctx context.Context) ([]WrappedDEK, error)

	// CreateDataKey stores d if and only if the store holds no data key
	// yet, atomically with that check (two processes starting on an empty
	// database: exactly one wins), and otherwise returns an error matching
	// ErrDataKeyExists and stores nothing.
	CreateDataKey(ctx context.Context, d WrappedDEK) error

	// RewrapDataKey replaces the record of data key d.ID with d if it is
	// still wrapped by master key oldKEKID (compare-and-swap), and reports
	// whether it did. It returns false and no error when the record is
	// wrapped by another master key by now (another rotation won), and an
	// error matching ErrUnknownDataKey when there is no such data key.
	RewrapDataKey(ctx context.Context, oldKEKID string, d WrappedDEK) (bool, error)
}

// CheckNoDataKeys is for a store opened without a master key: it returns a
// *MissingKeyError (matching ErrNoMasterKey) if the store holds any data key,
// that is, if values may have been sealed in it, so the caller stops at once
// instead of failing later, key by key. hint is MissingKeyError.Hint.
func CheckNoDataKeys(ctx context.Context, store DEKStore, hint string) error {
	recs, err := store.DataKeys(ctx)
	if err != nil {
		return fmt.Errorf("seal: load data keys: %w", err)
	}
	if len(recs) > 0 {
		return &MissingKeyError{Hint: hint}
	}
	return nil
}
