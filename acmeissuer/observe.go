package acmeissuer

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// Observer is told how each exchange with the CA went and how each
// challenge ended, for metrics. Its methods are called from many
// goroutines at once and must return quickly; they must not block on the
// CA or the store.
type Observer interface {
	// ObserveRequest reports one HTTP request to the CA: the directory URL
	// (ca), what the request was for (endpoint: one of the Endpoint*
	// constants), the response's status code (0 when no response came:
	// connection refused, timeout) and how long it took.
	ObserveRequest(ca, endpoint string, status int, took time.Duration)
	// ObserveChallenge reports a challenge's outcome: its ACME type
	// ("http-01", "dns-01", "tls-alpn-01") and "valid" or "invalid".
	ObserveChallenge(ca, challengeType, outcome string)
}

// Endpoint names for Observer.ObserveRequest: the resources of RFC 8555
// §7.1 (and RFC 9773's renewalInfo) as the directory and the objects name
// them.
const (
	EndpointDirectory   = "directory"
	EndpointNewNonce    = "newNonce"
	EndpointNewAccount  = "newAccount"
	EndpointNewOrder    = "newOrder"
	EndpointRevokeCert  = "revokeCert"
	EndpointKeyChange   = "keyChange"
	EndpointRenewalInfo = "renewalInfo"
	EndpointOrder       = "order"
	EndpointAuthz       = "authz"
	EndpointChallenge   = "challenge"
	EndpointFinalize    = "finalize"
	EndpointCert        = "cert"
	EndpointAccount     = "account" // anything else signed with the account (its own URL)
)

// Challenge outcomes for Observer.ObserveChallenge.
const (
	ChallengeValid   = "valid"
	ChallengeInvalid = "invalid"
)

// endpointKey is the context key of the endpointNames of the requests
// made with a context: their URLs are objects' own (an order, an
// authorization...), not the directory's.
type endpointKey struct{}

// endpointNames names requests by URL: exact matches first, else def.
type endpointNames struct {
	def   string
	exact map[string]string
}

// withEndpoint names the endpoint of the requests made with ctx: name, or
// for the URLs among pairs (url, name, url, name...), their own names.
// acmez's FinalizeOrder, for one, polls the order after the finalize POST.
func withEndpoint(ctx context.Context, name string, pairs ...string) context.Context {
	n := endpointNames{def: name}
	if len(pairs) > 0 {
		n.exact = make(map[string]string, len(pairs)/2)
		for k := 0; k+1 < len(pairs); k += 2 {
			n.exact[pairs[k]] = pairs[k+1]
		}
	}
	return context.WithValue(ctx, endpointKey{}, n)
}

// observer wraps the CA's transport to time every request and name its
// endpoint: the directory's URLs by the directory (learned when the Issuer
// fetches it), object URLs by the context the Issuer calls with.
type observer struct {
	base http.RoundTripper
	obs  Observer
	ca   string                         // the directory URL
	dir  atomic.Pointer[acme.Directory] // set once the Issuer has it
}

func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := o.base.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	o.obs.ObserveRequest(o.ca, o.endpoint(req), status, time.Since(start))
	return resp, err
}

// endpoint names what req is for.
func (o *observer) endpoint(req *http.Request) string {
	u := *req.URL
	u.RawQuery, u.Fragment = "", ""
	url := u.String()
	if url == o.ca {
		return EndpointDirectory
	}
	if d := o.dir.Load(); d != nil {
		switch url {
		case d.NewNonce:
			return EndpointNewNonce
		case d.NewAccount:
			return EndpointNewAccount
		case d.NewOrder:
			return EndpointNewOrder
		case d.RevokeCert:
			return EndpointRevokeCert
		case d.KeyChange:
			return EndpointKeyChange
		}
		if d.RenewalInfo != "" && strings.HasPrefix(url, strings.TrimSuffix(d.RenewalInfo, "/")+"/") {
			return EndpointRenewalInfo
		}
	}
	if n, ok := req.Context().Value(endpointKey{}).(endpointNames); ok {
		if name, ok := n.exact[url]; ok {
			return name
		}
		return n.def
	}
	return EndpointAccount
}

// observeChallenge reports a challenge's final status, if anyone listens.
func (i *Issuer) observeChallenge(acmeType, status string) {
	if i.cfg.Observer == nil {
		return
	}
	outcome := ChallengeInvalid
	if status == acme.StatusValid {
		outcome = ChallengeValid
	}
	i.cfg.Observer.ObserveChallenge(i.cfg.DirectoryURL, acmeType, outcome)
}

// StatusLabel renders a status for ObserveRequest's callers' labels: the
// code, or "error" when no response came.
func StatusLabel(status int) string {
	if status == 0 {
		return "error"
	}
	return strconv.Itoa(status)
}
