package sqlstore

// BatchSpecsForTest is the statement that reads a batch of PUTs' specs,
// for the query-plan tests.
var BatchSpecsForTest = qBatchSpecs
