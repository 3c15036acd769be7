// Package certfleet holds the domain of a central ACME certificate manager:
// certificate specs, issued certificates (the archive), renewal jobs and their
// leases, accounts, challenges, and the interfaces that the adapters implement
// (Store, Issuer, Solver, ChallengeStore).
//
// It also holds the pure logic every adapter shares: identifier normalisation,
// key generation, renewal-window and backoff maths, and the error codes.
//
// It deliberately does no I/O: no database driver, no HTTP server, no ACME
// client. Those live in their own packages (sqlite, acmeissuer, solver/...,
// manager) and meet only in daemon, which cmd/certfleet runs.
package certfleet
