// Package dnspersist01 is the solver of dns-persist-01 challenges
// (draft-ietf-acme-dns-persist): a persistent TXT record at
// _validation-persist.NAME, published once by the domain's owner, names
// the CA and the ACME account allowed to validate the name (§4.1). The
// record is an authorization the owner grants, so this solver never
// writes, changes or deletes it: Present and CleanUp do nothing, and Wait
// checks through Check that the record is there before the challenge is
// answered, so that a missing record costs no failed validation.
//
// What the record must say, and the check before any order, are package
// selftest's (certfleet persist-record prints the record); the scheduler
// keeps a name whose record is missing waiting (issue 14).
package dnspersist01

import (
	"context"

	"github.com/certfleet/certfleet"
)

// Solver answers dns-persist-01 challenges. The zero value is usable.
// Safe for concurrent use.
type Solver struct {
	// Check, if set, is called by Wait: it returns an error saying what
	// is wrong with the name's record (missing, another account, no
	// policy=wildcard for a wildcard, past persistUntil).
	Check func(ctx context.Context, chal certfleet.Challenge) error
}

var (
	_ certfleet.Solver = (*Solver)(nil)
	_ certfleet.Waiter = (*Solver)(nil)
)

// Present does nothing: draft-ietf-acme-dns-persist §4.5 lets the record
// be published before any certificate request, by another party than the
// client; certfleet is never the party that writes it.
func (*Solver) Present(context.Context, certfleet.Challenge) error { return nil }

// CleanUp does nothing: the record persists by design (§3: "this record
// is designed to persist and may be reused for multiple certificate
// issuances").
func (*Solver) CleanUp(context.Context, certfleet.Challenge) error { return nil }

// Wait runs Check, if set.
func (s *Solver) Wait(ctx context.Context, chal certfleet.Challenge) error {
	if s.Check == nil {
		return nil
	}
	return s.Check(ctx, chal)
}
