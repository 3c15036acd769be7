package sqlite_test

import (
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

func TestStoreAPIContract(t *testing.T) {
	storetest.RunAPI(t, func(t *testing.T) storetest.APIStore { return newTestStore(t) })
}

func TestStoreFleetContract(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetStore { return newTestStore(t) })
}

func TestStoreTenantContract(t *testing.T) {
	storetest.RunTenants(t, func(t *testing.T) storetest.TenantStore { return newTestStore(t) },
		func(t *testing.T) storetest.TenantStore { return newSealedTestStore(t) })
}

func TestStoreIdentityContract(t *testing.T) {
	storetest.RunIdentities(t, func(t *testing.T) certfleet.IdentityStore { return newTestStore(t) },
		func(t *testing.T) certfleet.IdentityStore { return newSealedTestStore(t) })
}

func TestHeartbeats(t *testing.T) {
	storetest.RunHeartbeats(t, func(t *testing.T) certfleet.HeartbeatStore { return newTestStore(t) })
}

func TestStoreNamesContract(t *testing.T) {
	storetest.RunNames(t, func(t *testing.T) storetest.TenantStore { return newTestStore(t) })
}

func TestStoreListingContract(t *testing.T) {
	storetest.RunListing(t, func(t *testing.T) storetest.TenantStore { return newTestStore(t) })
}
