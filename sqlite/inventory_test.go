package sqlite_test

import (
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

func TestInventoryStore(t *testing.T) {
	storetest.RunInventory(t, func(t *testing.T) certfleet.InventoryStore { return newTestStore(t) })
}

func TestEventBatch(t *testing.T) {
	storetest.RunEventBatch(t, func(t *testing.T) storetest.AuditStore { return newTestStore(t) })
}
