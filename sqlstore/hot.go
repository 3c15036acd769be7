package sqlstore

import "slices"

// hot lists the statements that run once or more per certificate, on the
// scheduler's and the CA's validation paths. A driver may keep them
// prepared (the SQLite driver does, from Open: compiling SQL was a third of
// the CPU time of CompleteIssuance there). Statements whose text is built
// per call do not belong here.
var hot = []Q{
	qDeleteExpiredChallenges, qPutChallenge, qDeleteChallenge, qChallenge,
	qInsertEvent,
	qInsertSpec, qInsertJob,
	qClaimDue, qLeasedJob, qInsertIssuance, qCompleteJob, qFailJob, qInsertAttempt, qPruneAttempts,
	qExtendLease, qSetPendingOrder, qReschedule, qReleaseLease,
	qJob, qNextDue, qLeaveQueue,
}

// HotStatements returns the statements worth preparing once (see hot).
func HotStatements() []Q { return slices.Clone(hot) }
