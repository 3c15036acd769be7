package manager

// The private key an order uses, and the compromised-key check.

import (
	"context"
	"crypto"
	"fmt"

	"github.com/certfleet/certfleet"
)

// certificateKey picks the key for the order: the pending order's key when
// resuming (its CSR must match), the current key when the spec reuses keys,
// else a fresh one. A key declared compromised (certfleet.KeyBlocklist) is
// never picked; resume is false when the pending order's key was one, so
// that a new order is placed instead.
func (m *Manager) certificateKey(ctx context.Context, job certfleet.Job, d decision) (key crypto.Signer, resume bool, err error) {
	resume = job.PendingOrderURL != ""
	if job.PendingOrderURL != "" && len(job.PendingKeyPEM) > 0 {
		k, err := certfleet.ParsePrivateKey(job.PendingKeyPEM)
		if err == nil {
			blocked, err := m.keyBlocked(ctx, k.Public())
			if err != nil {
				return nil, false, err
			}
			if !blocked {
				return k, true, nil
			}
			m.Logger.Warn("pending order's key was declared compromised; starting a new order with a new key", certfleet.LogCertificate, job.Spec)
		} else {
			m.Logger.Warn("pending order's key is unreadable; starting a new order", certfleet.LogCertificate, job.Spec, certfleet.LogError, err)
		}
		resume = false
	}
	// A key is reused only within one tenant: a certificate moved to
	// another customer gets a key its former owner never had.
	if d.spec.ReuseKey && d.current != nil && len(d.current.KeyPEM) > 0 && d.current.Tenant == d.spec.Tenant {
		k, err := certfleet.ParsePrivateKey(d.current.KeyPEM)
		if err == nil {
			if kt, err := certfleet.KeyTypeOf(k.Public()); err == nil && kt == job.KeyType {
				blocked, err := m.keyBlocked(ctx, k.Public())
				if err != nil {
					return nil, false, err
				}
				if !blocked {
					return k, resume, nil
				}
				m.Logger.Warn("reuse_key: the current key was declared compromised; making a new one", certfleet.LogCertificate, job.Spec)
			}
		}
	}
	k, err := certfleet.GenerateKey(job.KeyType)
	if err != nil {
		return nil, false, fmt.Errorf("generate %s key: %w", job.KeyType, err)
	}
	return k, resume, nil
}

// keyBlocked reports whether the key of pub was declared compromised.
func (m *Manager) keyBlocked(ctx context.Context, pub crypto.PublicKey) (bool, error) {
	id, err := certfleet.KeyID(pub)
	if err != nil {
		return false, err
	}
	blocked, err := m.Store.KeyBlocked(ctx, id)
	if err != nil {
		return false, storeError{fmt.Errorf("check the compromised-key list: %w", err)}
	}
	return blocked, nil
}
