package acmeissuer

import (
	"context"
	"slices"
	"sync"
)

// keyedMutex is a set of mutexes by name, made on demand and dropped when
// no one holds or waits for them. Locking honours the context.
type keyedMutex struct {
	mu    sync.Mutex // guards locks
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int           // holders and waiters
}

// lock locks key, or returns ctx's error.
func (k *keyedMutex) lock(ctx context.Context, key string) error {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		k.release(key, l)
		return ctx.Err()
	}
}

// unlock unlocks key, which must be locked.
func (k *keyedMutex) unlock(key string) {
	k.mu.Lock()
	l := k.locks[key]
	k.mu.Unlock()
	<-l.ch
	k.release(key, l)
}

func (k *keyedMutex) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}

// lockAll locks every key, in sorted order so that two callers locking
// overlapping sets cannot deadlock, and returns the function that unlocks
// them. On error nothing stays locked.
func (k *keyedMutex) lockAll(ctx context.Context, keys []string) (unlock func(), err error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var held []string
	unlock = func() {
		for _, key := range held {
			k.unlock(key)
		}
	}
	for _, key := range keys {
		if err := k.lock(ctx, key); err != nil {
			unlock()
			return nil, err
		}
		held = append(held, key)
	}
	return unlock, nil
}
