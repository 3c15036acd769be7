package sqlstore

// The scheduler's hot statements, for the query-plan test.
var (
	ClaimDueForTest = qClaimDue
	NextDueForTest  = qNextDue
)
