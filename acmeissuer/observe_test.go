package acmeissuer_test

import (
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// recordingObserver keeps what an Issuer reports.
type recordingObserver struct {
	mu         sync.Mutex     // guards the fields below
	requests   map[string]int // endpoint -> count
	statuses   map[string]map[int]int
	cas        map[string]bool
	challenges map[[2]string]int // (type, outcome) -> count
	negative   int
}

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{requests: map[string]int{}, statuses: map[string]map[int]int{}, cas: map[string]bool{},
		challenges: map[[2]string]int{}}
}

func (o *recordingObserver) ObserveRequest(ca, endpoint string, status int, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cas[ca] = true
	o.requests[endpoint]++
	if o.statuses[endpoint] == nil {
		o.statuses[endpoint] = map[int]int{}
	}
	o.statuses[endpoint][status]++
	if took < 0 {
		o.negative++
	}
}

func (o *recordingObserver) ObserveChallenge(ca, challengeType, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cas[ca] = true
	o.challenges[[2]string{challengeType, outcome}]++
}

// TestObserver issues a certificate, fails a validation, asks for ARI and
// revokes against Pebble, and checks that every request to the CA was
// reported under the right endpoint name and every challenge's outcome.
func TestObserver(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	obs := newRecordingObserver()
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Observer = obs })

	req := newTestRequest(t, certfleet.ECDSAP256, "good.example")
	leaf := mustVerify(t, mustIssue(t, iss, req).ChainPEM, env.ca.Roots(), req)
	if _, err := iss.RenewalInfo(t.Context(), leaf); err != nil {
		t.Fatal(err)
	}
	if err := iss.Revoke(t.Context(), leaf, 0); err != nil {
		t.Fatal(err)
	}
	env.http01.mu.Lock()
	env.http01.wrong = true
	env.http01.mu.Unlock()
	if _, err := iss.Issue(t.Context(), newTestRequest(t, certfleet.ECDSAP256, "bad.example")); err == nil {
		t.Fatal("issue with a wrong key authorization succeeded")
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.cas) != 1 || !obs.cas[env.ca.DirectoryURL()] {
		t.Errorf("ca labels = %v, want only %s", obs.cas, env.ca.DirectoryURL())
	}
	// At least once each; exact counts where the flow fixes them.
	atLeast := map[string]int{
		acmeissuer.EndpointDirectory: 1, acmeissuer.EndpointNewNonce: 1, acmeissuer.EndpointNewAccount: 1,
		acmeissuer.EndpointAuthz: 2, acmeissuer.EndpointOrder: 1, acmeissuer.EndpointRenewalInfo: 1,
	}
	for ep, n := range atLeast {
		if obs.requests[ep] < n {
			t.Errorf("%s: %d requests, want at least %d (all: %v)", ep, obs.requests[ep], n, obs.requests)
		}
	}
	// Posts may be repeated once on a rejected nonce (Pebble rejects 5%),
	// so count the successful responses.
	exact := map[string]struct{ status, n int }{
		acmeissuer.EndpointNewOrder:   {201, 2},
		acmeissuer.EndpointChallenge:  {200, 2},
		acmeissuer.EndpointFinalize:   {200, 1},
		acmeissuer.EndpointCert:       {200, 1},
		acmeissuer.EndpointRevokeCert: {200, 1},
	}
	for ep, w := range exact {
		if got := obs.statuses[ep][w.status]; got != w.n {
			t.Errorf("%s: %d responses with status %d, want %d (all: %v)", ep, got, w.status, w.n, obs.statuses[ep])
		}
	}
	if n := obs.requests[acmeissuer.EndpointAccount]; n != 0 {
		t.Errorf("%d requests not named by the directory or the flow (%v)", n, obs.requests)
	}
	if obs.negative != 0 {
		t.Errorf("%d negative durations", obs.negative)
	}
	want := map[[2]string]int{{"http-01", acmeissuer.ChallengeValid}: 1, {"http-01", acmeissuer.ChallengeInvalid}: 1}
	if len(obs.challenges) != len(want) {
		t.Errorf("challenges = %v, want %v", obs.challenges, want)
	}
	for k, n := range want {
		if obs.challenges[k] != n {
			t.Errorf("challenges %v = %d, want %d", k, obs.challenges[k], n)
		}
	}
}

func TestStatusLabel(t *testing.T) {
	for status, want := range map[int]string{0: "error", 200: "200", 503: "503"} {
		if got := acmeissuer.StatusLabel(status); got != want {
			t.Errorf("StatusLabel(%d) = %q, want %q", status, got, want)
		}
	}
}
