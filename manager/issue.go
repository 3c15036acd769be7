package manager

// Placing (or resuming) the order and archiving the certificate, within a
// rate-limit budget's reservation.

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"time"

	"github.com/certfleet/certfleet"
)

// orderIntent describes the order job would place. Renewal is a guess
// (a like-for-like renewal; whether "replaces" is sent depends on the CA
// offering ARI), corrected by the issuer's BeforeNewOrder.
func (m *Manager) orderIntent(job certfleet.Job, d decision) certfleet.OrderIntent {
	return certfleet.OrderIntent{Job: job.JobKey, Account: d.spec.AccountName(), Tenant: d.spec.Tenant, Identifiers: d.spec.Identifiers,
		Renewal: d.leaf != nil && job.CurrentRevision == d.spec.Revision(job.KeyType), At: m.Now()}
}

// prepareAndIssue runs Prepare, the order, and Prepare's done.
func (m *Manager) prepareAndIssue(ctx context.Context, job certfleet.Job, d *decision) (certfleet.Issuance, error) {
	if m.Prepare != nil {
		done, err := m.Prepare(ctx, d.spec)
		if err != nil {
			return certfleet.Issuance{}, fmt.Errorf("prepare %s before ordering: %w", d.spec.Name, err)
		}
		if done != nil {
			defer done()
		}
	}
	return m.issue(ctx, job, d)
}

// issue orders the certificate, archives it and schedules the next check.
// The order's URL and the certificate are saved through store outages
// (save): an order the store does not know is placed again by whoever
// works on the job next, and a certificate not archived is fetched again.
func (m *Manager) issue(ctx context.Context, job certfleet.Job, d *decision) (certfleet.Issuance, error) {
	log := m.Logger.With(certfleet.LogCertificate, job.Spec, certfleet.LogKeyType, string(job.KeyType))
	var (
		key    crypto.Signer
		keyPEM []byte
		csr    *x509.CertificateRequest
	)
	if len(d.spec.CSR) > 0 {
		// CSR mode: the host keeps the key; no key is made or stored.
		var err error
		if csr, err = parseSpecCSR(d.spec); err != nil {
			return certfleet.Issuance{}, certfleet.ErrNoRetry{Err: err}
		}
		blocked, err := m.keyBlocked(ctx, csr.PublicKey)
		if err != nil {
			return certfleet.Issuance{}, err
		}
		if blocked {
			return certfleet.Issuance{}, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID,
				"certificate %q: the key of its CSR was declared compromised (certfleet compromise); the host must submit a CSR made with a new key", d.spec.Name)}
		}
	} else {
		var err error
		var resume bool
		if key, resume, err = m.certificateKey(ctx, job, *d); err != nil {
			return certfleet.Issuance{}, err
		}
		if !resume {
			job.PendingOrderURL = "" // its key is compromised: a new order
		}
		if keyPEM, err = certfleet.MarshalPrivateKey(key); err != nil {
			return certfleet.Issuance{}, err
		}
	}
	req := certfleet.IssueRequest{
		Spec: d.spec, KeyType: job.KeyType, Key: key, CSR: csr,
		ResumeOrderURL: job.PendingOrderURL,
		OnOrder: func(ctx context.Context, orderURL string) error {
			d.orderURL = orderURL
			return m.save(ctx, "the order's URL", log, func(ctx context.Context) error {
				return m.Store.SetPendingOrder(ctx, job.JobKey, m.Instance, orderURL, keyPEM)
			})
		},
	}
	if job.PendingOrderURL != "" {
		d.orderURL = job.PendingOrderURL
	}
	if err := m.placing(ctx, job, &req, log); err != nil {
		return certfleet.Issuance{}, err
	}
	// RFC 9773 §5: "replaces" names the certificate being renewed; only a
	// like-for-like renewal is one (changed names are a new certificate).
	if d.leaf != nil && job.CurrentRevision == d.spec.Revision(job.KeyType) {
		req.Replaces = d.leaf
	}
	intent := m.orderIntent(job, *d)
	var reservation int64
	if m.Budget != nil {
		// intent.OrderURL ends as the order this attempt worked on: the
		// resumed one, or the new one once the CA created it ("" if the
		// CA refused the new order).
		intent.OrderURL = job.PendingOrderURL
		onOrder := req.OnOrder
		req.OnOrder = func(ctx context.Context, orderURL string) error {
			intent.OrderURL = orderURL
			return onOrder(ctx, orderURL)
		}
		reserved := false
		req.BeforeNewOrder = func(ctx context.Context, replaces bool) error {
			if reserved && (replaces || !intent.Renewal) {
				// The same order placed again (the account was
				// replaced or its key changed): already reserved. An
				// exempt renewal whose "replaces" the CA refused is
				// not: placed without it, it counts.
				return nil
			}
			intent.Renewal, intent.At = replaces, m.Now()
			r, err := m.Budget.Reserve(ctx, intent)
			if err != nil {
				return budgetError(err)
			}
			reservation, reserved, intent.OrderURL = r.ID, true, ""
			if w := r.Released; w != nil {
				m.released(ctx, job, *w, r.ReleasedLimit)
			}
			return nil
		}
	}
	res, err := d.issuer.Issue(ctx, req)
	if m.Budget != nil {
		// Like the rest of a job's clean-up: done even when ctx ends
		// (shutdown), but bounded, so a hung store cannot block it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		intent.At = m.Now()
		m.Budget.Finish(fctx, intent, reservation, err)
		cancel()
	}
	if err != nil {
		if d.orderURL == "" && certfleet.ErrorCode(err) == certfleet.EUNAVAILABLE && !certfleet.IsCAOutage(err) {
			// The store (not the CA: acmeissuer's unreachable CA is an
			// IsCAOutage error) failed before an order was placed or
			// resumed, loading the account during a database restart:
			// nothing was spent at the CA and the job is not at fault,
			// so it is given back without a failed attempt or backoff.
			return certfleet.Issuance{}, storeError{err}
		}
		return certfleet.Issuance{}, err
	}
	chain, err := certfleet.ParseChain(res.ChainPEM)
	if err != nil {
		return certfleet.Issuance{}, fmt.Errorf("certificate from %s: %w", res.CertURL, err)
	}
	leaf := chain[0]
	now := m.Now()
	iss := certfleet.Issuance{
		Spec: job.Spec, KeyType: job.KeyType, SpecRevision: d.spec.Revision(job.KeyType),
		Identifiers: d.spec.Identifiers,
		Serial:      leaf.SerialNumber.Text(16), Fingerprint: certfleet.Fingerprint(leaf),
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		ChainPEM: res.ChainPEM, KeyPEM: keyPEM,
		ARICertID: certfleet.ARICertID(leaf),
		CA:        res.CA, AccountURL: res.AccountURL, OrderURL: res.OrderURL, CertURL: res.CertURL,
		IssuedAt: now, Tenant: d.spec.Tenant,
	}
	if d.current != nil {
		iss.Replaces = d.current.ID
	}
	d.next = m.firstCheck(*d, iss, now)
	d.next.SeenRevision = job.TargetRevision // a change meanwhile makes it due at once
	attempt := certfleet.Attempt{
		JobKey: job.JobKey, Instance: m.Instance, StartedAt: now, FinishedAt: now,
		Outcome: certfleet.OutcomeIssued, OrderURL: res.OrderURL,
	}
	var stored certfleet.Issuance
	err = m.save(ctx, "the issued certificate", log, func(ctx context.Context) error {
		var err error
		stored, err = m.Store.CompleteIssuance(ctx, m.Instance, iss, d.next, attempt)
		return err
	})
	if err != nil {
		return certfleet.Issuance{}, fmt.Errorf("archive certificate %s: %w", iss.Serial, err)
	}
	return stored, nil
}

// placing wires the mark of an order being placed (issue 16): the issuer
// saves it just before it places a new order (OnPlacing); a job taken
// over with a mark and no saved order URL was interrupted between the
// CA creating the order and the store learning its URL, and the issuer
// looks that order up (Placed) instead of placing a second one. The
// pending orders of the spec's other key types are for the same names and
// are never taken for it.
func (m *Manager) placing(ctx context.Context, job certfleet.Job, req *certfleet.IssueRequest, log *slog.Logger) error {
	req.OnPlacing = func(ctx context.Context, p certfleet.OrderPlacing) error {
		return m.save(ctx, "the mark of the order being placed", log, func(ctx context.Context) error {
			return m.Store.MarkPlacing(ctx, job.JobKey, m.Instance, p)
		})
	}
	if req.ResumeOrderURL != "" || job.Placing.At.IsZero() {
		return nil
	}
	siblings, err := m.Store.Jobs(ctx, certfleet.JobFilter{Spec: job.Spec, IncludeDisabled: true})
	if err != nil {
		return storeError{fmt.Errorf("read the other jobs of %s: %w", job.Spec, err)}
	}
	for _, j := range siblings {
		if j.KeyType != job.KeyType && j.PendingOrderURL != "" {
			req.NotOrders = append(req.NotOrders, j.PendingOrderURL)
		}
	}
	p := job.Placing
	req.Placed = &p
	log.Info("the job's last order placing was interrupted before its URL was saved; looking for the order at the CA",
		"placing_at", p.At)
	return nil
}

// parseSpecCSR decodes the PEM CSR of a CSR-mode spec (checked by the API
// when it was submitted).
func parseSpecCSR(sp certfleet.CertificateSpec) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(sp.CSR)
	if block == nil {
		return nil, certfleet.Errorf(certfleet.EINVALID, "certificate %q: its CSR is not PEM", sp.Name)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, certfleet.Errorf(certfleet.EINVALID, "certificate %q: its CSR is invalid: %v", sp.Name, err)
	}
	return csr, nil
}

// released reports the end of a job's wait for a rate-limit budget: its
// turn came and its order is being placed. With the deferral that started
// the wait, it is the whole of the wait in the audit trail.
func (m *Manager) released(ctx context.Context, job certfleet.Job, w certfleet.BudgetWait, limit string) {
	waited := m.Now().Sub(w.Since).Round(time.Second)
	m.Logger.Info("rate-limit budget's turn came; ordering", certfleet.LogCertificate, job.Spec,
		certfleet.LogKeyType, string(job.KeyType), "budget", w.Name, "waited", waited)
	m.emit(ctx, certfleet.Event{Kind: certfleet.EventReleased, Certificate: job.Spec, KeyType: job.KeyType,
		Reason: limit, Detail: fmt.Sprintf("turn came for budget %s at %s after waiting %s (since %s)",
			w.Name, w.CA, waited, w.Since.UTC().Format(time.RFC3339))})
}
