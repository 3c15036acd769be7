package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
)

// sealPasser is a store that can seal the keys it holds in plaintext
// (sqlstore.Store, under both drivers).
type sealPasser interface {
	PlaintextKeys(ctx context.Context) (map[string]int, error)
	SealPlaintextKeys(ctx context.Context, opts sqlstore.SealPassOptions) (sqlstore.SealPassResult, error)
}

// sealProgressEvery spaces the progress lines of a long seal pass.
const sealProgressEvery = 5 * time.Second

// sealStoredKeys runs when a store is opened with a master key (every
// command that opens the store: migrate, serve, issue, …): it seals the
// private keys stored before the master key was configured, a batch per
// transaction (a crash loses nothing; the next start continues), and
// compacts the database so that their plaintext is gone from its files
// (issue 17). Whatever happens, the store is never said to be encrypted
// while a key in it is not: a failure, or keys still plaintext afterwards,
// is a warning with their count. It returns the number of keys left
// plaintext (-1 when it cannot tell).
func sealStoredKeys(ctx context.Context, st certfleet.Store, log *slog.Logger) int {
	sp, ok := st.(sealPasser)
	if !ok {
		return 0
	}
	last := time.Time{}
	res, err := sp.SealPlaintextKeys(ctx, sqlstore.SealPassOptions{Progress: func(p sqlstore.SealProgress) {
		if last.IsZero() {
			log.Info("sealing private keys stored before the master key was set", "count", p.Total)
		}
		if time.Since(last) >= sealProgressEvery {
			last = time.Now()
			log.Info("sealing private keys", "sealed", p.Sealed, "of", p.Total, "column", p.Column)
		}
	}})
	if err != nil {
		left := -1
		if m, cerr := sp.PlaintextKeys(ctx); cerr == nil {
			left = 0
			for _, n := range m {
				left += n
			}
		}
		log.Warn(fmt.Sprintf("private keys are NOT all encrypted at rest: %d left in plaintext (-1: unknown), and the database files may still hold "+
			"the plaintext of keys sealed so far until the compaction after sealing succeeds; it continues at the next start (or run certfleet migrate)", left),
			"plaintext_keys", left, certfleet.LogError, err)
		return left
	}
	if res.Total() > 0 || res.Compacted {
		log.Info("private keys sealed and the database compacted", "sealed", res.Total(), "where", describeCounts(res.Sealed), "compacted", res.Compacted)
	}
	if res.Remaining > 0 {
		log.Warn(fmt.Sprintf("private keys are NOT all encrypted at rest: %d still plaintext (written meanwhile by an instance without the master key?); give every instance the master key and restart", res.Remaining),
			"plaintext_keys", res.Remaining)
	}
	return res.Remaining
}

// describeCounts words per-column counts, e.g. "issuances.key_pem: 3".
func describeCounts(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
