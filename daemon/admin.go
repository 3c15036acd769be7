package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

// The operator's actions on a store by hand (certfleet token, secret and
// fleet): each changes the store, then records an event by the operator
// running this process (OperatorEvent) in its audit trail. When only the
// event fails, the change stands and the error says it is missing from the
// trail.

// OperatorEvent is an event done by the operator running this process
// (Operator), from this host (Host).
func OperatorEvent(kind, detail string) certfleet.Event {
	return certfleet.Event{Kind: kind, Actor: Operator(), Remote: Host(), Detail: detail}
}

// RevokeToken revokes the API token id at once and records it, with what
// the token allowed (TokenDetail). revoked reports whether the store
// revoked it, also when the event then failed.
func RevokeToken(ctx context.Context, ts TokenStore, id string) (revoked bool, err error) {
	detail := id
	if t, err := ts.Token(ctx, id); err == nil {
		detail = TokenDetail(t)
		if t.Revoked() {
			detail += "; already revoked at " + t.RevokedAt.UTC().Format(time.RFC3339)
		}
	}
	at := time.Now()
	if err := ts.RevokeToken(ctx, id, at); err != nil {
		return false, err
	}
	e := OperatorEvent(certfleet.EventTokenRevoked, detail)
	e.At = at
	if err := ts.RecordEvent(ctx, e); err != nil {
		return true, fmt.Errorf("token %s revoked, but it is missing from the audit trail: %w", id, err)
	}
	return true, nil
}

// PutSecret stores the secret name, sealed, replacing any earlier value,
// and records it (its length, never its value).
func PutSecret(ctx context.Context, st certfleet.Store, name string, value []byte) error {
	if err := st.PutSecret(ctx, name, value); err != nil {
		return err
	}
	e := OperatorEvent(certfleet.EventSecretChanged, fmt.Sprintf("secret %s set (%d bytes)", name, len(value)))
	if err := st.RecordEvent(ctx, e); err != nil {
		return fmt.Errorf("secret %s stored, but it is missing from the audit trail: %w", name, err)
	}
	return nil
}

// DeleteSecret deletes the stored secret name and records it.
func DeleteSecret(ctx context.Context, st certfleet.Store, name string) error {
	if err := st.DeleteSecret(ctx, name); err != nil {
		return err
	}
	if err := st.RecordEvent(ctx, OperatorEvent(certfleet.EventSecretChanged, "secret "+name+" deleted")); err != nil {
		return fmt.Errorf("secret %s deleted, but it is missing from the audit trail: %w", name, err)
	}
	return nil
}

// ForgetAgent deletes every report of the agent name (a host taken out of
// service) and records it. deleted is how many reports went, -1 when the
// store did not forget the agent.
func ForgetAgent(ctx context.Context, st certfleet.Store, name string) (deleted int, err error) {
	fleet, ok := st.(certfleet.FleetStore)
	if !ok {
		return -1, fmt.Errorf("the %T store keeps no agent reports", st)
	}
	n, err := fleet.ForgetAgent(ctx, name)
	if err != nil {
		return -1, err
	}
	if err := st.RecordEvent(ctx, OperatorEvent(certfleet.EventAgentForgot, fmt.Sprintf("agent %s forgotten: %d report(s) deleted", name, n))); err != nil {
		return n, fmt.Errorf("agent %s forgotten, but it is missing from the audit trail: %w", name, err)
	}
	return n, nil
}
