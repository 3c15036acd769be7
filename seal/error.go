package seal

import (
	"errors"
	"fmt"
	"strings"
)

// Errors to test for with errors.Is. Messages name keys by ID and files by
// path; none ever contains key material or a plaintext.
var (
	// ErrNoMasterKey: sealed data or a data key exists, and no master key
	// was given. *MissingKeyError matches it.
	ErrNoMasterKey = errors.New("no master key given")
	// ErrWrongMasterKey: a data key is wrapped by a master key this process
	// does not have. *WrongKeyError matches it.
	ErrWrongMasterKey = errors.New("data key wrapped by another master key")
	// ErrNotSealed: Open was given something that is not a sealed value
	// (for example a legacy plaintext PEM).
	ErrNotSealed = errors.New("not a sealed value")
	// ErrNoSealer: SealSecret was called on a Keyring without a master
	// key; secrets, unlike private keys written before a master key was
	// set, are never kept in the clear.
	ErrNoSealer = errors.New("the store has no master key")
	// ErrMalformed: a value starts like a sealed value but its header is
	// broken, too short, or of an unknown format version.
	ErrMalformed = errors.New("malformed sealed value")
	// ErrUnknownDataKey: a value names a data key the store does not hold.
	ErrUnknownDataKey = errors.New("unknown data key")
	// ErrAuthFailed: AES-GCM authentication failed: the value (or wrapped
	// data key) was altered, or the additional data differs.
	ErrAuthFailed = errors.New("message authentication failed")
	// ErrDataKeyExists is what DEKStore.CreateDataKey returns when the
	// store already holds a data key.
	ErrDataKeyExists = errors.New("the store already holds a data key")
	// ErrInsecureKeyFile: a master key file is readable or writable by its
	// group or by others.
	ErrInsecureKeyFile = errors.New("master key file readable by others")
)

// MissingKeyError is the error of a store that holds sealed values or data
// keys but was opened without a master key. Hint says where the master key is
// expected, in the caller's words ("file: /etc/certfleet/master.key, env:
// CERTFLEET_MASTER_KEY").
type MissingKeyError struct{ Hint string }

func (e *MissingKeyError) Error() string {
	msg := "the store holds encrypted keys; start certfleet with the master key"
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrNoMasterKey) true.
func (e *MissingKeyError) Unwrap() error { return ErrNoMasterKey }

// WrongKeyError says that data key DEKID is wrapped by master key KEKID and
// this process has only the master keys Have. It typically means the wrong
// master key file, or a rotation this process has not caught up with.
type WrongKeyError struct {
	DEKID string
	KEKID string
	Have  []string
}

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("seal: data key %s is wrapped by master key %s, but this process has master key %s: start it with the master key %s (or, during a rotation, with both keys)",
		e.DEKID, e.KEKID, strings.Join(e.Have, " and "), e.KEKID)
}

// Unwrap makes errors.Is(err, ErrWrongMasterKey) true.
func (e *WrongKeyError) Unwrap() error { return ErrWrongMasterKey }
