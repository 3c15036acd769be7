package sqlite_test

import (
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

func TestStoreDeliveriesContract(t *testing.T) {
	storetest.RunDeliveries(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}
