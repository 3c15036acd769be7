package sqlstore

// The scheduler's hot statements, for the query-plan test.
var (
	ClaimDueForTest = qClaimDue
	NextDueForTest  = qNextDue
)

// ListingForTest are the listing's page and bound statements by driver
// and direction ("term back", "bound failing", "all status"…), for the
// query-plan tests.
func ListingForTest() map[string]Q {
	names := map[listDriver]string{driveAll: "all", driveTenant: "tenant", driveSource: "source", driveTerm: "term", driveFailing: "failing"}
	out := map[string]Q{}
	for k, q := range listStatements {
		n := names[k.d]
		if k.back {
			n += " back"
		}
		if k.status {
			out["page "+n+" status"] = q
			continue
		}
		out["page "+n] = q
		out["bound "+n] = boundStatements[k]
	}
	return out
}

// PageExtrasForTest are the statements of PageExtras and of a page's
// chains, for the query-plan tests.
func PageExtrasForTest() map[string]Q {
	return map[string]Q{"attempts": qPageAttempts, "waits": qPageWaits, "reasons": qPageReasons, "reports": qPageReports, "chains": qPageChains}
}

// ExpiringCertificatesForTest is the alert rounds' read of what expires
// soon (CurrentFilter.ByExpiry), for the query-plan tests.
var ExpiringCertificatesForTest = qExpiringCertificates
