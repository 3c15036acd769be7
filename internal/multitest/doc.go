// Package multitest holds the tests of several certfleet instances sharing
// one PostgreSQL database: exactly-once issuance across instances, and
// failover when an instance is killed with SIGKILL. It has no API: the tests
// are the package. They need CERTFLEET_TEST_POSTGRES (see internal/pgtest).
package multitest
