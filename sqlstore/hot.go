package sqlstore

import "slices"

// hot lists the statements that run once or more per certificate, on the
// scheduler's and the CA's validation paths, and once or more per request
// of the API's hot paths. A driver may keep them
// prepared (the SQLite driver does, from Open: compiling SQL was a third of
// the CPU time of CompleteIssuance there). Statements whose text is built
// per call do not belong here.
var hot = []Q{
	qDeleteExpiredChallenges, qPutChallenge, qDeleteChallenge, qChallenge,
	qInsertEvent,
	qInsertSpec, qInsertJob,
	qClaimDue, qLeasedJob, qInsertIssuance, qCompleteJob, qFailJob, qInsertAttempt, qPruneAttempts,
	qExtendLease, qSetPendingOrder, qMarkPlacing, qReschedule, qReleaseLease,
	qJob, qNextDue, qLeaveQueue,
	// PUT /v1/names and the reads of its answer, and a round of alerts
	// over the certificates events named: a dozen statements per PUT,
	// compiled each time, were a quarter of serve's CPU time while names
	// were declared (issue 13).
	qSpec, qBatchSpecs, qInsertSpecName, qClearSpecNames, qInsertSpecTerm, qClearSpecTerms, qSpecsByName,
	qAttempts, qSpecWaitingNames, qSpecAgentReports, qSpecCurrentCertificates,
	// GET of a certificate: the token and the archive row (both cached
	// in the API for a while).
	qTokenByHash, qIssuance,
}

// HotStatements returns the statements worth preparing once (see hot).
func HotStatements() []Q { return slices.Clone(hot) }
