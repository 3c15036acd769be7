package sqlite_test

import (
	"testing"

	"github.com/certfleet/certfleet/storetest"
)

func TestStoreMetricsContract(t *testing.T) {
	storetest.RunMetrics(t, func(t *testing.T) storetest.StatsStore { return newTestStore(t) })
}
