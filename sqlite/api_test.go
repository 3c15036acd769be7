package sqlite_test

import (
	"testing"

	"github.com/certfleet/certfleet/storetest"
)

func TestStoreAPIContract(t *testing.T) {
	storetest.RunAPI(t, func(t *testing.T) storetest.APIStore { return newTestStore(t) })
}

func TestStoreFleetContract(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetStore { return newTestStore(t) })
}
