package httpapi

import (
	"context"
	"time"

	"github.com/certfleet/certfleet"
)

// Group commit of PUT /v1/names (issue 13). A PUT decides what to write
// under writeMu, as before, but no longer commits under it: the decided
// spec write joins a queue, and the writes that queued while one commit was
// under way go to the store together in the next (SpecBatchWriter.PutSpecs:
// one transaction, one spec lock, one durable flush). With 8 clients on
// PostgreSQL, where each commit waits for the disk (about 6 ms here), this
// is what lets PUTs go faster than one commit at a time. A PUT still
// answers only once its own write is committed.
//
// A decision must not rest on a write that is still queued: the names a
// queued write changes are pending (Server.pending, under writeMu), and a
// PUT that would decide on one of them waits until it is committed. Writes
// of one batch therefore never touch the same name. What decides on more
// than the request's names (packing, DELETE) waits until nothing is
// pending, and holds writeMu meanwhile, so nothing new queues.

// maxGroupCommit bounds one commit's puts: a batch holds the spec lock
// for its whole transaction.
const maxGroupCommit = 256

// groupCommitTimeout bounds a batch's transaction: the leader's own
// request may be cancelled, the others' writes still go on.
const groupCommitTimeout = 30 * time.Second

// queuedPut is one PUT's write waiting for its batch.
type queuedPut struct {
	put  certfleet.SpecPut
	done chan struct{} // one signal: the result is in, or lead
	lead bool          // this PUT commits the next batch
	res  certfleet.SpecPutResult
}

// groupCommit commits put with whatever else is queued and returns its
// result. The first PUT to find no commit under way leads: it commits the
// queue, hands the results out, and hands the lead to the first PUT that
// queued meanwhile.
func (s *Server) groupCommit(ctx context.Context, store certfleet.SpecBatchWriter, put certfleet.SpecPut) certfleet.SpecPutResult {
	q := &queuedPut{put: put, done: make(chan struct{}, 1)}
	s.gcMu.Lock()
	s.gcQueue = append(s.gcQueue, q)
	lead := !s.gcBusy
	s.gcBusy = true
	s.gcMu.Unlock()
	if !lead {
		<-q.done
		if !q.lead {
			return q.res
		}
	}
	s.gcMu.Lock()
	n := min(len(s.gcQueue), maxGroupCommit)
	batch := s.gcQueue[:n:n]
	s.gcQueue = append([]*queuedPut(nil), s.gcQueue[n:]...)
	s.gcMu.Unlock()

	puts := make([]certfleet.SpecPut, len(batch))
	for i, b := range batch {
		puts[i] = b.put
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupCommitTimeout)
	res, err := store.PutSpecs(bctx, puts)
	cancel()
	s.groupCommits.Add(1)
	for i, b := range batch {
		if err != nil {
			b.res = certfleet.SpecPutResult{Err: err}
		} else {
			b.res = res[i]
		}
		if b != q {
			b.done <- struct{}{}
		}
	}
	s.gcMu.Lock()
	if len(s.gcQueue) > 0 {
		next := s.gcQueue[0]
		next.lead = true
		next.done <- struct{}{}
	} else {
		s.gcBusy = false
	}
	s.gcMu.Unlock()
	return q.res
}

// awaitNames waits, with writeMu held, until no queued write changes any
// of names, and no one waits for everything to be committed.
func (s *Server) awaitNames(names []string) {
	for {
		if s.draining == 0 && !s.anyPending(names) {
			return
		}
		s.pendingCond.Wait()
	}
}

// anyPending reports, with writeMu held, whether a queued write changes
// one of names.
func (s *Server) anyPending(names []string) bool {
	for _, n := range names {
		if s.pending[n] > 0 {
			return true
		}
	}
	return false
}

// awaitAll waits, with writeMu held, until every queued write is
// committed; writes that would queue meanwhile wait behind it.
func (s *Server) awaitAll() {
	s.draining++
	for len(s.pending) > 0 {
		s.pendingCond.Wait()
	}
	s.draining--
}

// markPending notes, with writeMu held, that a write of names is queued.
func (s *Server) markPending(names []string) {
	if s.pending == nil {
		s.pending = make(map[string]int)
	}
	for _, n := range names {
		s.pending[n]++
	}
}

// unmarkPending notes that the write of names is committed (or failed),
// and wakes the PUTs that wait for them.
func (s *Server) unmarkPending(names []string) {
	s.writeMu.Lock()
	s.unmarkPendingLocked(names)
	s.writeMu.Unlock()
}

// unmarkPendingLocked is unmarkPending with writeMu held.
func (s *Server) unmarkPendingLocked(names []string) {
	for _, n := range names {
		if s.pending[n]--; s.pending[n] <= 0 {
			delete(s.pending, n)
		}
	}
	s.pendingCond.Broadcast()
}

// auditSinks tells how a PUT's audit event is recorded. When the store's
// own audit trail is among s.Events (the daemon puts it first), the store
// records the event in the transaction of the change (SpecPut.Event) and
// others gets it after the commit; otherwise (hooks recording through
// their own sink, tests with a sink of their own) every sink gets it after
// the commit, as before.
func (s *Server) auditSinks() (inStore bool, others certfleet.EventSinks) {
	var sinks certfleet.EventSinks
	switch e := s.Events.(type) {
	case nil:
		return false, nil
	case certfleet.EventSinks:
		sinks = e
	case *certfleet.EventSinks:
		sinks = *e
	default:
		sinks = certfleet.EventSinks{e}
	}
	store := certfleet.EventSink(s.Store)
	for _, sink := range sinks {
		if sink == store {
			inStore = true
		} else {
			others = append(others, sink)
		}
	}
	if !inStore {
		return false, sinks
	}
	return true, others
}
