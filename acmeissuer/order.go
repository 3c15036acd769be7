package acmeissuer

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/mholt/acmez/v3/acme"
)

// errKeyMismatch: a resumed order's certificate is for another key (the
// pending key was lost); a new order is needed.
var errKeyMismatch = errors.New("certificate does not match the request's key")

// errStaleAuthz: an authorization of a resumed order failed on a challenge
// answered by the interrupted attempt (whose responder may be gone); a new
// order deserves a fresh try.
var errStaleAuthz = errors.New("stale challenge")

// maxOrderSteps bounds the state machine of one order: pending → ready →
// (processing →) valid takes at most four steps; the rest is margin.
const maxOrderSteps = 8

// Issue obtains a certificate for req (RFC 8555 §7.1 "Certificate
// issuance"): it resumes req.ResumeOrderURL when that order is still usable,
// else places a new order and reports its URL through req.OnOrder before any
// challenge is answered; then it solves the order's pending authorizations
// concurrently, finalizes with a CSR made from req.Key and downloads the
// chain. Presented challenges are always cleaned up.
//
// Errors name the order and the failed identifier; see the package doc for
// their classification. An error returned by OnOrder is passed through
// (wrapped), and ends the issuance before any challenge.
func (i *Issuer) Issue(ctx context.Context, req certfleet.IssueRequest) (certfleet.IssueResult, error) {
	var used crypto.Signer // the account key the attempt signed with
	res, err := i.issue(ctx, req, &used)
	if err != nil && certfleet.ProblemType(err) != "" && used != nil {
		// Ours: the account's key was rolled over (or the account
		// deactivated) by another process while this order was in
		// flight, so the CA refused the old key. Once more with the
		// account as stored now, rather than failing the order.
		if cur, aerr := i.account(ctx); aerr != nil && errors.As(aerr, new(certfleet.ErrNoRetry)) {
			return res, aerr // deactivated meanwhile: say so
		} else if aerr == nil && cur.PrivateKey != used {
			i.logger.Info("the account key changed during the order; trying again with the new key", "account", cur.Location)
			res, err = i.issue(ctx, req, &used)
		}
	}
	if certfleet.ProblemType(err) == acme.ProblemTypeAccountDoesNotExist {
		// The CA forgot our account (a reset CA, a staging wipe): without
		// a new one every order would fail until a person noticed.
		if rerr := i.replaceAccount(ctx); rerr != nil {
			return res, finish(fmt.Errorf("%w (and creating a new account failed: %v)", err, rerr))
		}
		res, err = i.issue(ctx, req, &used)
	}
	return res, finish(err)
}

// issue runs one attempt; *used is set to the account key it signs with.
func (i *Issuer) issue(ctx context.Context, req certfleet.IssueRequest, used *crypto.Signer) (certfleet.IssueResult, error) {
	spec := req.Spec
	if req.Key == nil && req.CSR == nil {
		return certfleet.IssueResult{}, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID, "certificate %q: no key", spec.Name)}
	}
	if len(spec.Identifiers) == 0 {
		return certfleet.IssueResult{}, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID, "certificate %q: no identifiers", spec.Name)}
	}
	solver := i.cfg.Solvers[spec.Challenge]
	if solver == nil {
		return certfleet.IssueResult{}, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID,
			"certificate %q: no solver for challenge %q is configured", spec.Name, spec.Challenge)}
	}
	dir, err := i.directory(ctx)
	if err != nil {
		return certfleet.IssueResult{}, err
	}
	if spec.Profile != "" {
		// draft-aaron-acme-profiles §4: "The client MUST NOT request a
		// profile name that is not advertised in the server's Directory
		// metadata object."
		if dir.Meta == nil || !hasKey(dir.Meta.Profiles, spec.Profile) {
			return certfleet.IssueResult{}, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID,
				"certificate %q: the CA %s does not offer profile %q", spec.Name, i.cfg.DirectoryURL, spec.Profile)}
		}
	}
	acct, err := i.account(ctx)
	if err != nil {
		return certfleet.IssueResult{}, err
	}
	*used = acct.PrivateKey
	lg := i.logger.With(certfleet.LogCertificate, spec.Name, certfleet.LogKeyType, string(req.KeyType))

	if req.ResumeOrderURL != "" {
		order, ok, err := i.resume(ctx, acct, req, lg)
		if err != nil {
			return certfleet.IssueResult{}, err
		}
		if ok {
			res, err := i.complete(ctx, acct, order, req, solver, lg)
			switch {
			case errors.Is(err, errKeyMismatch):
				lg.Warn("resumed order's certificate is for another key; placing a new order", certfleet.LogOrderURL, order.Location)
			case errors.Is(err, errStaleAuthz):
				lg.Info("resumed order failed on a challenge answered before the interruption; placing a new order",
					certfleet.LogOrderURL, order.Location, certfleet.LogError, err)
			default:
				return res, err
			}
		}
	}
	if req.Placed != nil && req.ResumeOrderURL == "" {
		order, ok, err := i.findPlaced(ctx, acct, req, lg)
		if err != nil {
			return certfleet.IssueResult{}, err
		}
		if ok {
			if req.OnOrder != nil {
				if err := req.OnOrder(ctx, order.Location); err != nil {
					return certfleet.IssueResult{}, fmt.Errorf("order %s: %w", order.Location, err)
				}
			}
			res, err := i.complete(ctx, acct, order, req, solver, lg)
			switch {
			case errors.Is(err, errKeyMismatch), errors.Is(err, errStaleAuthz):
				lg.Info("the order of an interrupted placing cannot be completed; placing a new order",
					certfleet.LogOrderURL, order.Location, certfleet.LogError, err)
			default:
				return res, err
			}
		}
	}
	order, err := i.newOrder(ctx, acct, dir, req, lg)
	if err != nil {
		return certfleet.IssueResult{}, err
	}
	return i.complete(ctx, acct, order, req, solver, lg)
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// resume fetches an earlier order. ok is false when it cannot be continued
// (gone, invalid, expired, or for other identifiers): the caller places a
// new one. An unreachable CA is an error, not a reason for a new order.
func (i *Issuer) resume(ctx context.Context, acct acme.Account, req certfleet.IssueRequest, lg *slog.Logger) (acme.Order, bool, error) {
	url := req.ResumeOrderURL
	var order acme.Order
	rec, err := i.call(withEndpoint(ctx, EndpointOrder), func(ctx context.Context) error {
		var err error
		order, err = i.client.GetOrder(ctx, acct, acme.Order{Location: url})
		return err
	})
	status, _ := rec.get()
	switch {
	case err != nil && status >= 400 && status < 500 && status != http.StatusTooManyRequests:
		// 404 for an order that expired from the CA's memory, 403 for
		// an order of another account: either way it is not ours to
		// continue.
		lg.Info("pending order is gone; placing a new one", certfleet.LogOrderURL, url, certfleet.LogError, err)
		return acme.Order{}, false, nil
	case err != nil:
		return acme.Order{}, false, fmt.Errorf("resume order %s: %w", url, err)
	}
	order.Location = url
	reason := ""
	switch {
	case order.Status == acme.StatusInvalid:
		reason = "it is invalid"
	case !sameIdentifiers(order.Identifiers, req.Spec.Identifiers):
		reason = "its identifiers differ from the certificate's"
	case order.Status != acme.StatusValid && !order.Expires.IsZero() && order.Expires.Before(i.now()):
		reason = "it has expired"
	}
	if reason != "" {
		lg.Info("pending order cannot be continued ("+reason+"); placing a new one", certfleet.LogOrderURL, url, "status", order.Status)
		return acme.Order{}, false, nil
	}
	lg.Info("order resumed", certfleet.LogOrderURL, url, "status", order.Status)
	return order, true, nil
}

// newOrder places an order (RFC 8555 §7.4) and reports its URL through
// req.OnOrder.
func (i *Issuer) newOrder(ctx context.Context, acct acme.Account, dir acme.Directory, req certfleet.IssueRequest, lg *slog.Logger) (acme.Order, error) {
	tmpl := acme.Order{Identifiers: acmeIdentifiers(req.Spec.Identifiers), Profile: req.Spec.Profile}
	// RFC 9773 §5: "Clients SHOULD include this field in New Order
	// requests if there is a clear predecessor certificate". Only CAs
	// offering ARI understand it.
	if req.Replaces != nil && dir.RenewalInfo != "" {
		tmpl.Replaces = certfleet.ARICertID(req.Replaces)
	}
	if req.BeforeNewOrder != nil {
		// Rate-limit budgets: the last word before the CA counts an order.
		if err := req.BeforeNewOrder(ctx, tmpl.Replaces != ""); err != nil {
			return acme.Order{}, err
		}
	}
	if req.OnPlacing != nil {
		// Ours (issue 16): the mark lets whoever takes the job over after
		// a crash before OnOrder find this order (findPlaced).
		if err := req.OnPlacing(ctx, certfleet.OrderPlacing{At: i.now(), Account: acct.Location, Identifiers: req.Spec.Identifiers}); err != nil {
			return acme.Order{}, err
		}
	}
	place := func(o acme.Order) (acme.Order, error) {
		_, err := i.call(ctx, func(ctx context.Context) error {
			var err error
			o, err = i.client.NewOrder(ctx, acct, o)
			return err
		})
		return o, err
	}
	order, err := place(tmpl)
	var p acme.Problem
	if err != nil && tmpl.Replaces != "" && errors.As(err, &p) && p.Type != acme.ProblemTypeRateLimited {
		// Ours: CAs refuse a "replaces" for many reasons (already
		// replaced by another order, unknown to them, another account's)
		// and each says so differently; the certificate is still wanted.
		lg.Info("the CA refused the replaces field; ordering without it", "replaces", tmpl.Replaces, certfleet.LogError, err)
		tmpl.Replaces = ""
		if req.BeforeNewOrder != nil {
			// Without "replaces" the CA counts the order against its
			// limits: the budget must see it as a new order.
			if err := req.BeforeNewOrder(ctx, false); err != nil {
				return acme.Order{}, err
			}
		}
		order, err = place(tmpl)
	}
	names := strings.Join(certfleet.IdentifierValues(req.Spec.Identifiers), ", ")
	if err != nil {
		if req.OnPlacing != nil && notPlaced(err) {
			// The mark would make the next attempt walk the orders
			// list for an order that does not exist; a mark left by a
			// failed clearing costs no more than that walk.
			_ = req.OnPlacing(ctx, certfleet.OrderPlacing{})
		}
		return acme.Order{}, fmt.Errorf("new order for %s: %w", names, err)
	}
	if order.Location == "" {
		return acme.Order{}, fmt.Errorf("new order for %s: the CA sent no order URL", names)
	}
	lg.Info("order placed", certfleet.LogOrderURL, order.Location, certfleet.LogIdentifiers, names,
		"profile", req.Spec.Profile, "replaces", tmpl.Replaces)
	if req.OnOrder != nil {
		if err := req.OnOrder(ctx, order.Location); err != nil {
			return acme.Order{}, fmt.Errorf("order %s: %w", order.Location, err)
		}
	}
	return order, nil
}

// notPlaced reports whether a failed newOrder certainly created no order:
// the CA answered with a problem document (RFC 8555 §6.7: the request was
// refused), or the connection was refused (nothing was sent). A timeout or
// a connection broken after the request was sent leaves it unknown.
func notPlaced(err error) bool {
	var p acme.Problem
	return errors.As(err, &p) || errors.Is(err, syscall.ECONNREFUSED)
}

// complete drives an order to "valid" and downloads its certificate
// (RFC 8555 §7.1.6 order states).
func (i *Issuer) complete(ctx context.Context, acct acme.Account, order acme.Order, req certfleet.IssueRequest, solver certfleet.Solver, lg *slog.Logger) (certfleet.IssueResult, error) {
	url := order.Location
	var err error
	optimistic := false // the order is taken to be ready, unseen
	for range maxOrderSteps {
		switch order.Status {
		case acme.StatusPending:
			if err := i.authorize(ctx, acct, order, req.Spec, solver, lg); err != nil {
				return certfleet.IssueResult{}, fmt.Errorf("order %s: %w", url, err)
			}
			// RFC 8555 §7.4: "Once the client believes it has fulfilled
			// the server's requirements, it should send a POST request to
			// the order resource's finalize URL." Every authorization is
			// valid, so finalize without fetching the order first; a CA
			// that disagrees answers orderNotReady and we poll.
			order.Status = acme.StatusReady
			optimistic = true
			continue
		case acme.StatusReady:
			var notReady bool
			order, notReady, err = i.finalize(ctx, acct, order, req)
			if notReady && optimistic {
				optimistic = false
				order.Status = acme.StatusPending
				order, err = i.pollOrder(ctx, acct, order, acme.StatusPending, 0)
			}
		case acme.StatusProcessing:
			order, err = i.pollOrder(ctx, acct, order, acme.StatusProcessing, i.cfg.PollInterval)
		case acme.StatusValid:
			return i.download(ctx, acct, order, req, lg)
		case acme.StatusInvalid:
			return certfleet.IssueResult{}, fmt.Errorf("order %s is invalid: %w", url, orderProblem(order, i.cfg.DirectoryURL))
		default:
			return certfleet.IssueResult{}, fmt.Errorf("order %s: unknown status %q", url, order.Status)
		}
		if err != nil {
			return certfleet.IssueResult{}, fmt.Errorf("order %s: %w", url, err)
		}
		order.Location = url
	}
	return certfleet.IssueResult{}, fmt.Errorf("order %s: still %s after %d steps", url, order.Status, maxOrderSteps)
}

// orderProblem classifies the problem of an invalid order.
func orderProblem(order acme.Order, dir string) error {
	if order.Error == nil {
		return errors.New("the CA gave no reason")
	}
	return classify(*order.Error, nil, dir)
}

// finalize sends the CSR (RFC 8555 §7.4) and waits while the order is
// processing. notReady reports that the CA refused because the order is
// not ready: "the server MUST return a 403 (Forbidden) error with a
// problem document of type orderNotReady" (acmez swallows the problem, so
// the 403 of the finalize request is what tells).
func (i *Issuer) finalize(ctx context.Context, acct acme.Account, order acme.Order, req certfleet.IssueRequest) (_ acme.Order, notReady bool, _ error) {
	var csr []byte
	if req.Key == nil && req.CSR != nil {
		csr = req.CSR.Raw // CSR mode: the host's own request
	} else {
		var err error
		if csr, err = csrFor(req.Key, req.Spec.Identifiers); err != nil {
			return order, false, err
		}
	}
	sent := order
	rec, err := i.call(withEndpoint(ctx, EndpointOrder, order.Finalize, EndpointFinalize), func(ctx context.Context) error {
		var err error
		order, err = i.client.FinalizeOrder(ctx, acct, order, csr)
		return err
	})
	if err != nil {
		if status, _ := rec.get(); status == http.StatusForbidden && order.Status == sent.Status {
			return sent, true, fmt.Errorf("finalize: %w", err)
		}
		return order, false, fmt.Errorf("finalize: %w", err)
	}
	return order, false, nil
}

// download fetches the chain of a valid order and checks that it is for
// req.Key.
func (i *Issuer) download(ctx context.Context, acct acme.Account, order acme.Order, req certfleet.IssueRequest, lg *slog.Logger) (certfleet.IssueResult, error) {
	if order.Certificate == "" {
		return certfleet.IssueResult{}, fmt.Errorf("order %s is valid but has no certificate URL", order.Location)
	}
	var chains []acme.Certificate
	_, err := i.call(withEndpoint(ctx, EndpointCert), func(ctx context.Context) error {
		var err error
		chains, err = i.client.GetCertificateChain(ctx, acct, order.Certificate)
		return err
	})
	if err != nil {
		return certfleet.IssueResult{}, fmt.Errorf("order %s: download certificate %s: %w", order.Location, order.Certificate, err)
	}
	if len(chains) == 0 {
		return certfleet.IssueResult{}, fmt.Errorf("order %s: certificate %s: no chain", order.Location, order.Certificate)
	}
	chain := chains[0] // the default chain; alternates follow (RFC 8555 §7.4.2)
	certs, err := certfleet.ParseChain(chain.ChainPEM)
	if err != nil {
		return certfleet.IssueResult{}, fmt.Errorf("order %s: certificate %s: %w", order.Location, order.Certificate, err)
	}
	var want crypto.PublicKey
	if req.Key != nil {
		want = req.Key.Public()
	} else {
		want = req.CSR.PublicKey
	}
	if pub, ok := want.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(certs[0].PublicKey) {
		return certfleet.IssueResult{}, fmt.Errorf("order %s: certificate %s: %w", order.Location, order.Certificate, errKeyMismatch)
	}
	lg.Info("certificate issued", certfleet.LogOrderURL, order.Location,
		certfleet.LogSerial, certfleet.SerialString(certs[0].SerialNumber), certfleet.LogNotAfter, certs[0].NotAfter)
	return certfleet.IssueResult{
		ChainPEM:   chain.ChainPEM,
		OrderURL:   order.Location,
		CertURL:    chain.URL,
		CA:         i.cfg.DirectoryURL,
		AccountURL: acct.Location,
	}, nil
}

// pollOrder fetches the order until its status is no longer while, first
// after the given delay.
func (i *Issuer) pollOrder(ctx context.Context, acct acme.Account, order acme.Order, while string, first time.Duration) (acme.Order, error) {
	p := i.newPoller(first)
	for {
		if err := p.wait(ctx); err != nil {
			return order, fmt.Errorf("waiting while %s: %w", while, err)
		}
		rec, err := i.call(withEndpoint(ctx, EndpointOrder), func(ctx context.Context) error {
			var err error
			order, err = i.client.GetOrder(ctx, acct, order)
			return err
		})
		if err != nil {
			return order, fmt.Errorf("poll: %w", err)
		}
		if order.Status != while {
			return order, nil
		}
		p.next(rec)
	}
}

// poller spaces out polls: first delay, then growing by half each time up
// to MaxPollInterval, Retry-After taking precedence (RFC 8555 §7.4: "Send
// a POST-as-GET request after the time given in the Retry-After header
// field of the response, if any"), all within PollTimeout.
type poller struct {
	delay    time.Duration
	interval time.Duration
	deadline time.Time
	now      func() time.Time
}

func (i *Issuer) newPoller(first time.Duration) *poller {
	return &poller{
		delay:    first,
		interval: i.cfg.PollInterval,
		deadline: time.Now().Add(i.cfg.PollTimeout),
		now:      i.now,
	}
}

func (p *poller) wait(ctx context.Context) error {
	if time.Now().Add(p.delay).After(p.deadline) {
		return errors.New("poll timeout")
	}
	if p.delay <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(p.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *poller) next(rec *recorder) {
	p.delay = p.interval
	p.interval = min(p.interval*3/2, max(MaxPollInterval, p.interval))
	if _, at := rec.get(); !at.IsZero() {
		if d := at.Sub(p.now()); d > 0 {
			p.delay = d
		}
	}
}

// authorize proves control of the order's identifiers (RFC 8555 §7.5):
// it presents every pending authorization's challenge, waits until the
// solver says they are answerable, then answers and polls them all
// concurrently. Valid authorizations (reused by the CA) are skipped.
func (i *Issuer) authorize(ctx context.Context, acct acme.Account, order acme.Order, spec certfleet.CertificateSpec, solver certfleet.Solver, lg *slog.Logger) error {
	ct := spec.Challenge
	authzs := make([]acme.Authorization, len(order.Authorizations))
	if err := parallel(ctx, len(authzs), func(ctx context.Context, k int) error {
		_, err := i.call(withEndpoint(ctx, EndpointAuthz), func(ctx context.Context) error {
			var err error
			authzs[k], err = i.client.GetAuthorization(ctx, acct, order.Authorizations[k])
			return err
		})
		if err != nil {
			return fmt.Errorf("authorization %s: %w", order.Authorizations[k], err)
		}
		return nil
	}); err != nil {
		return err
	}

	acmeType := ct.ACMEType()
	type work struct {
		authz acme.Authorization
		chal  acme.Challenge
		c     certfleet.Challenge
	}
	var todo []work
	for _, a := range authzs {
		switch a.Status {
		case acme.StatusValid:
			continue
		case acme.StatusPending:
		default:
			// Only an order placed before can hold a failed
			// authorization when we first look.
			return fmt.Errorf("%w (answered before this attempt: %w)", i.authzFailure(a, acmeType), errStaleAuthz)
		}
		k := slices.IndexFunc(a.Challenges, func(c acme.Challenge) bool { return c.Type == acmeType })
		if k < 0 {
			offered := make([]string, len(a.Challenges))
			for n, c := range a.Challenges {
				offered[n] = c.Type
			}
			return certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID,
				"authorization for %q: the CA offers %s, not %s", a.IdentifierValue(), strings.Join(offered, ", "), acmeType)}
		}
		ch := a.Challenges[k]
		todo = append(todo, work{authz: a, chal: ch, c: certfleet.Challenge{
			Type:             certfleet.ChallengeType(acmeType),
			Identifier:       certfleet.Identifier{Type: certfleet.IdentifierType(a.Identifier.Type), Value: a.Identifier.Value},
			Token:            ch.Token,
			KeyAuthorization: ch.KeyAuthorization,
			URL:              ch.URL,
			DNSProvider:      spec.DNSProvider,
			Webroot:          spec.Webroot,
			// draft-ietf-acme-dns-persist §3.1, §4.2: what the record
			// must name (dns-persist-01 only; empty otherwise).
			IssuerDomainNames: ch.IssuerDomainNames,
			AccountURL:        acct.Location,
			Wildcard:          a.Wildcard,
		}})
	}
	if len(todo) == 0 {
		return nil
	}

	// RFC 8737 §3: the CA reaches a tls-alpn-01 responder with only the
	// SNI name, so two orders for one name (the RSA and ECDSA certificates
	// of a dual spec) would overwrite each other's challenge certificate.
	// Ours: hold the name from Present until the authorization is final
	// and cleaned up.
	if acmeType == acme.ChallengeTypeTLSALPN01 {
		keys := make([]string, len(todo))
		for n, w := range todo {
			keys[n] = w.c.Identifier.Value
		}
		unlock, err := i.alpnMu.lockAll(ctx, keys)
		if err != nil {
			return fmt.Errorf("wait for other tls-alpn-01 validations of the same names: %w", err)
		}
		defer unlock()
	}

	// Present all; clean up all that were presented, whatever happens.
	presented := make([]bool, len(todo))
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		var wg sync.WaitGroup
		for n, w := range todo {
			if !presented[n] {
				continue
			}
			wg.Go(func() {
				if err := solver.CleanUp(cctx, w.c); err != nil {
					lg.Warn("challenge cleanup failed", certfleet.LogIdentifier, w.c.Identifier.Value,
						certfleet.LogChallenge, w.c.Type, certfleet.LogError, err)
				}
			})
		}
		wg.Wait()
	}()
	var presentMu sync.Mutex
	if err := parallel(ctx, len(todo), func(ctx context.Context, n int) error {
		presentMu.Lock()
		presented[n] = true // CleanUp tolerates a failed Present
		presentMu.Unlock()
		if err := solver.Present(ctx, todo[n].c); err != nil {
			return fmt.Errorf("present %s challenge for %q: %w", todo[n].c.Type, todo[n].c.Identifier.Value, err)
		}
		return nil
	}); err != nil {
		return err
	}
	if w, ok := solver.(certfleet.Waiter); ok {
		if err := parallel(ctx, len(todo), func(ctx context.Context, n int) error {
			if err := w.Wait(ctx, todo[n].c); err != nil {
				return fmt.Errorf("wait for %s challenge for %q: %w", todo[n].c.Type, todo[n].c.Identifier.Value, err)
			}
			return nil
		}); err != nil {
			return err
		}
	}

	// Answer and poll each authorization on its own.
	return parallel(ctx, len(todo), func(ctx context.Context, n int) error {
		w := todo[n]
		// RFC 8555 §7.5.1: "The client indicates to the server that it is
		// ready for the challenge validation by sending an empty JSON body
		// ("{}") carried in a POST request to the challenge URL".
		// A challenge answered before a crash is already "processing":
		// answering again is an error (RFC 8555 §7.1.6), so only wait.
		answered := w.chal.Status != "" && w.chal.Status != acme.StatusPending
		if !answered {
			_, err := i.call(withEndpoint(ctx, EndpointChallenge), func(ctx context.Context) error {
				_, err := i.client.InitiateChallenge(ctx, acct, w.chal)
				return err
			})
			if err != nil {
				// A resumed order can fail under us: a challenge answered
				// before the interruption fails validation (its responder
				// is gone) and the CA invalidates the order's other
				// challenges too. Then this answer is refused, and a new
				// order is the way on.
				if a, gerr := i.client.GetAuthorization(withEndpoint(ctx, EndpointAuthz), acct, w.authz.Location); gerr == nil && a.Status == acme.StatusInvalid {
					i.observeChallenge(acmeType, a.Status)
					return fmt.Errorf("%w (invalidated before this attempt could answer: %w)", i.authzFailure(a, acmeType), errStaleAuthz)
				}
				return fmt.Errorf("authorization for %q (%s): answer challenge: %w", w.authz.IdentifierValue(), acmeType, err)
			}
		}
		a, err := i.pollAuthz(ctx, acct, w.authz)
		if err != nil {
			return fmt.Errorf("authorization for %q (%s): %w", w.authz.IdentifierValue(), acmeType, err)
		}
		i.observeChallenge(acmeType, a.Status)
		if a.Status != acme.StatusValid {
			if answered {
				return fmt.Errorf("%w (answered before this attempt: %w)", i.authzFailure(a, acmeType), errStaleAuthz)
			}
			return i.authzFailure(a, acmeType)
		}
		lg.Debug("authorization valid", certfleet.LogIdentifier, a.IdentifierValue(), certfleet.LogChallenge, acmeType)
		return nil
	})
}

// pollAuthz fetches an authorization until it is no longer pending.
func (i *Issuer) pollAuthz(ctx context.Context, acct acme.Account, a acme.Authorization) (acme.Authorization, error) {
	p := i.newPoller(i.cfg.PollInterval)
	for {
		if err := p.wait(ctx); err != nil {
			return a, err
		}
		rec, err := i.call(withEndpoint(ctx, EndpointAuthz), func(ctx context.Context) error {
			var err error
			a, err = i.client.GetAuthorization(ctx, acct, a.Location)
			return err
		})
		if err != nil {
			return a, fmt.Errorf("poll: %w", err)
		}
		if a.Status != acme.StatusPending && a.Status != acme.StatusProcessing {
			return a, nil
		}
		p.next(rec)
	}
}

// authzFailure describes an authorization that is not valid, with the
// problem of its challenge (RFC 8555 §7.1.4: the challenge's "error"
// field), classified.
func (i *Issuer) authzFailure(a acme.Authorization, acmeType string) error {
	e := &authzError{identifier: a.IdentifierValue(), challenge: acmeType, status: a.Status}
	for _, c := range a.Challenges {
		if c.Error != nil && (c.Type == acmeType || e.problem.Type == "") {
			e.problem = *c.Error
		}
	}
	err := classify(e, nil, i.cfg.DirectoryURL)
	// Ours: a failed validation (unauthorized, connection, dns, tls, caa)
	// is the most common failure and is healed by a person fixing DNS, a
	// port forward, a firewall or a CAA record, sometimes by the network
	// itself. It is retried on the normal exponential backoff, not once a
	// day; only a CA that will never issue for the name is permanent.
	var ce *caError
	if errors.As(err, &ce) && ce.problem != acme.ProblemTypeRejectedIdentifier && ce.problem != acme.ProblemTypeUnsupportedIdentifier {
		ce.noRetry = false
	}
	return err
}

// parallel runs f(0..n-1) concurrently and returns the first error; the
// others are cancelled once one fails.
func parallel(ctx context.Context, n int, f func(ctx context.Context, k int) error) error {
	if n == 1 {
		return f(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards first
		first error
	)
	for k := range n {
		wg.Go(func() {
			if err := f(ctx, k); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// acmeIdentifiers converts identifiers for an order (RFC 8555 §7.1.3; IP
// addresses per RFC 8738 §3).
func acmeIdentifiers(ids []certfleet.Identifier) []acme.Identifier {
	out := make([]acme.Identifier, len(ids))
	for n, id := range ids {
		out[n] = acme.Identifier{Type: string(id.Type), Value: id.Value}
	}
	return out
}

// sameIdentifiers compares an order's identifiers with a spec's, as sets.
func sameIdentifiers(got []acme.Identifier, want []certfleet.Identifier) bool {
	if len(got) != len(want) {
		return false
	}
	a := make([]string, len(got))
	for n, id := range got {
		v := strings.ToLower(id.Value)
		if addr, err := netip.ParseAddr(v); err == nil {
			v = addr.Unmap().String()
		}
		a[n] = id.Type + ":" + v
	}
	b := make([]string, len(want))
	for n, id := range want {
		b[n] = string(id.Type) + ":" + id.Value
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// csrFor makes the finalize CSR (RFC 8555 §7.4: DER, base64url by acmez):
// every identifier as a SAN, DNS names and IP addresses, and no subject
// common name, which RFC 8555 does not require.
func csrFor(key crypto.Signer, ids []certfleet.Identifier) ([]byte, error) {
	tmpl := &x509.CertificateRequest{}
	for _, id := range ids {
		switch id.Type {
		case certfleet.IdentifierIP:
			addr, err := netip.ParseAddr(id.Value)
			if err != nil {
				return nil, fmt.Errorf("csr: identifier %q: %w", id.Value, err)
			}
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(addr.AsSlice()))
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, id.Value)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return der, nil
}
