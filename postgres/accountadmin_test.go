package postgres_test

import (
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

func TestStoreAccountsContract(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}

func TestStoreCompromiseContract(t *testing.T) {
	storetest.RunCompromise(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}
