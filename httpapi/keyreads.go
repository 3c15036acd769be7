package httpapi

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// DefaultKeyReadInterval is Server.KeyReadInterval's default. Caddy asks
// get_certificate at every TLS handshake and caches nothing (Bud's SNI
// lookup is the same): recording each read wrote one audit row and one log
// line per handshake (issue 17: 296 handshakes, 296 rows). A consumer
// re-reading the same key version is instead recorded once at its first
// read (at once, before the key is sent: who read what is never lost) and
// then once per interval with the number of reads it stands for.
const DefaultKeyReadInterval = time.Minute

// readKey is what makes two reads "the same consumer re-reading the same
// key version": the credential, the client's address (without its port,
// which changes with every connection), the endpoint and the issuance.
type readKey struct {
	token, ip, consumer string
	issuance            int64
}

// readWindow counts the reads of one readKey since its last record.
type readWindow struct {
	first, last time.Time // of the reads not yet recorded
	pending     int       // reads not yet recorded
	kr          certfleet.KeyRead
	timer       *time.Timer
}

// readAggregator holds the open windows.
type readAggregator struct {
	mu      sync.Mutex // guards windows
	windows map[readKey]*readWindow
}

func (s *Server) keyReadInterval() time.Duration {
	if s.KeyReadInterval == 0 {
		return DefaultKeyReadInterval
	}
	return s.KeyReadInterval
}

// recordRepeatedRead records the key read rep carries for a
// handshake-driven consumer: the first read of a key version by a client
// is recorded at once (a failure refuses the key, as for every read); the
// next ones within the interval are counted and recorded together when it
// ends, with their count, and no longer logged one by one.
func (s *Server) recordRepeatedRead(r *http.Request, rep reply) *Problem {
	kr := *rep.keyRead
	kr.At, kr.Remote = s.Now(), r.RemoteAddr
	iv := s.keyReadInterval()
	if iv < 0 {
		return s.recordRead(r.Context(), kr)
	}
	ip := r.RemoteAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	k := readKey{token: kr.TokenID, ip: ip, consumer: rep.consumer, issuance: kr.IssuanceID}
	a := &s.reads
	a.mu.Lock()
	if w, ok := a.windows[k]; ok {
		if w.pending == 0 {
			w.first = kr.At
		}
		w.pending++
		w.last, w.kr = kr.At, kr
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	if prob := s.recordRead(r.Context(), kr); prob != nil {
		return prob
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.windows[k]; ok {
		return nil // another request opened it meanwhile; this read is recorded
	}
	if a.windows == nil {
		a.windows = map[readKey]*readWindow{}
	}
	w := &readWindow{kr: kr}
	w.timer = time.AfterFunc(iv, func() { s.closeWindow(k) })
	a.windows[k] = w
	return nil
}

// closeWindow ends k's interval: the reads counted in it are recorded as
// one, and the window stays open for another interval; a window without
// reads is dropped, so the next read is recorded at once again.
func (s *Server) closeWindow(k readKey) {
	a := &s.reads
	a.mu.Lock()
	w, ok := a.windows[k]
	if !ok {
		a.mu.Unlock()
		return
	}
	if w.pending == 0 {
		delete(a.windows, k)
		a.mu.Unlock()
		return
	}
	kr := w.kr
	kr.Count, kr.Since, kr.At = w.pending, w.first, w.last
	w.pending = 0
	w.timer.Reset(s.keyReadInterval())
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if prob := s.recordRead(ctx, kr); prob != nil {
		s.Logger.Error("record repeated key reads: lost", "token", kr.TokenID, certfleet.LogCertificate, kr.Spec, "count", kr.Count)
	}
}

// FlushKeyReads records the reads counted and not yet recorded (at
// shutdown: cmd calls it once the API listeners have stopped).
func (s *Server) FlushKeyReads() {
	a := &s.reads
	a.mu.Lock()
	var keys []readKey
	for k, w := range a.windows {
		w.timer.Stop()
		keys = append(keys, k)
	}
	a.mu.Unlock()
	for _, k := range keys {
		s.closeWindow(k)
		a.mu.Lock()
		if w, ok := a.windows[k]; ok {
			w.timer.Stop()
			delete(a.windows, k)
		}
		a.mu.Unlock()
	}
}

// recordRead writes one key-read record and logs it; a failure is the
// problem to answer with (no record, no key).
func (s *Server) recordRead(ctx context.Context, kr certfleet.KeyRead) *Problem {
	if err := s.Store.RecordKeyRead(ctx, kr); err != nil {
		s.Logger.Error("record key read; key not sent", certfleet.LogError, err)
		return problemf(certfleet.EUNAVAILABLE, "cannot record the key read now; retry")
	}
	if kr.Count > 1 {
		s.Logger.Info("private key read repeatedly", "token", kr.TokenID, certfleet.LogCertificate, kr.Spec,
			certfleet.LogKeyType, string(kr.KeyType), certfleet.LogSerial, kr.Serial, "remote", kr.Remote, "count", kr.Count, "since", kr.Since)
	} else {
		s.Logger.Info("private key read", "token", kr.TokenID, certfleet.LogCertificate, kr.Spec,
			certfleet.LogKeyType, string(kr.KeyType), certfleet.LogSerial, kr.Serial, "remote", kr.Remote)
	}
	return nil
}

// bundleKey is a name and a version (issuance) of its certificate.
type bundleKey struct {
	name     string
	issuance int64
}

// bundles caches get_certificate's answers (chain and key PEM in one body)
// by name and version: a new issuance is a new key, so an entry is never
// stale, and the old one ages out of the bounded map.
type bundles struct {
	mu sync.Mutex // guards m
	m  map[bundleKey][]byte
}

// maxBundles bounds the cache (about 5 KB an entry).
const maxBundles = 10000

// bundle returns iss's chain followed by its key, for name.
func (s *Server) bundle(name string, iss *certfleet.Issuance) []byte {
	c := &s.bundleCache
	k := bundleKey{name: name, issuance: iss.ID}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.m[k]; ok {
		return b
	}
	if c.m == nil || len(c.m) >= maxBundles {
		c.m = make(map[bundleKey][]byte)
	}
	b := make([]byte, 0, len(iss.ChainPEM)+len(iss.KeyPEM))
	b = append(append(b, iss.ChainPEM...), iss.KeyPEM...)
	c.m[k] = b
	return b
}
