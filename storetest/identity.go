package storetest

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunIdentities is the contract of certfleet.IdentityStore (issue 17).
// newStore returns a new, empty, open store; newSealed one with a master
// key (nil skips the sealed cases).
func RunIdentities(t *testing.T, newStore, newSealed func(t *testing.T) certfleet.IdentityStore) {
	t.Run("CAOnce", func(t *testing.T) {
		stores := []func(t *testing.T) certfleet.IdentityStore{newStore}
		if newSealed != nil {
			stores = append(stores, newSealed)
		}
		for _, mk := range stores {
			s := mk(t)
			ctx := t.Context()
			if cas, err := s.IdentityCAs(ctx); err != nil || len(cas) != 0 {
				t.Fatalf("IdentityCAs of an empty store = %v, %v", cas, err)
			}
			first := certfleet.IdentityCA{ID: "idca-1", CertPEM: []byte("cert one"), KeyPEM: []byte("-----BEGIN PRIVATE KEY-----\nkey one\n")}
			got, err := s.CreateIdentityCA(ctx, first)
			if err != nil || got.ID != first.ID || !bytes.Equal(got.KeyPEM, first.KeyPEM) || !bytes.Equal(got.CertPEM, first.CertPEM) {
				t.Fatalf("CreateIdentityCA = %+v, %v", got, err)
			}
			// A second instance creating the CA at once gets the first.
			got, err = s.CreateIdentityCA(ctx, certfleet.IdentityCA{ID: "idca-1", CertPEM: []byte("cert two"), KeyPEM: []byte("key two")})
			if err != nil || !bytes.Equal(got.KeyPEM, first.KeyPEM) || !bytes.Equal(got.CertPEM, first.CertPEM) {
				t.Fatalf("second CreateIdentityCA = %+v, %v; want the first CA", got, err)
			}
			if cas, err := s.IdentityCAs(ctx); err != nil || len(cas) != 1 {
				t.Fatalf("IdentityCAs = %d, %v; want 1", len(cas), err)
			}
		}
	})
	t.Run("EnrollOnce", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		now := time.Now()
		tok := newEnrollToken(t, s, now.Add(time.Hour))
		id, err := s.Enroll(ctx, tok.Hash, certfleet.Identity{ID: "idn_1", Name: "web1", Serial: "01", NotAfter: now.Add(time.Hour), CreatedAt: now})
		if err != nil {
			t.Fatalf("Enroll: %v", err)
		}
		if !slices.Equal(id.Names, tok.Names) || !slices.Equal(id.Permissions, tok.Permissions) || id.Tenant != tok.Tenant || id.EnrollToken != tok.ID {
			t.Errorf("enrolled identity %+v does not carry the token's scope %+v", id, tok)
		}
		_, err = s.Enroll(ctx, tok.Hash, certfleet.Identity{ID: "idn_2", Name: "thief", Serial: "02", NotAfter: now.Add(time.Hour), CreatedAt: now})
		if certfleet.ErrorCode(err) != certfleet.EUNAUTHORIZED {
			t.Errorf("second Enroll with one token: %v, want EUNAUTHORIZED", err)
		}
		if _, err := s.Identity(ctx, "idn_2"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			t.Errorf("the refused enrollment left an identity: %v", err)
		}
		got, err := s.Identity(ctx, "idn_1")
		if err != nil || got.Name != "web1" || got.Serial != "01" || got.Revoked() {
			t.Errorf("Identity = %+v, %v", got, err)
		}
		toks, err := s.EnrollTokens(ctx)
		if err != nil || len(toks) != 1 || toks[0].UsedBy != "idn_1" || toks[0].UsedAt.IsZero() {
			t.Errorf("EnrollTokens after use = %+v, %v", toks, err)
		}
		// Expired and unknown tokens get the same error.
		old := newEnrollToken(t, s, now.Add(-time.Second))
		if _, err := s.Enroll(ctx, old.Hash, certfleet.Identity{ID: "idn_3", Serial: "03", NotAfter: now.Add(time.Hour), CreatedAt: now}); certfleet.ErrorCode(err) != certfleet.EUNAUTHORIZED {
			t.Errorf("Enroll with an expired token: %v, want EUNAUTHORIZED", err)
		}
		if _, err := s.Enroll(ctx, certfleet.HashTokenSecret("cfe_nothing"), certfleet.Identity{ID: "idn_4", Serial: "04", NotAfter: now.Add(time.Hour), CreatedAt: now}); certfleet.ErrorCode(err) != certfleet.EUNAUTHORIZED {
			t.Errorf("Enroll with an unknown token: %v, want EUNAUTHORIZED", err)
		}
	})
	t.Run("EnrollRace", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		tok := newEnrollToken(t, s, now.Add(time.Hour))
		var (
			wg sync.WaitGroup
			mu sync.Mutex
			ok int
		)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Enroll(t.Context(), tok.Hash, certfleet.Identity{ID: "idn_race" + string(rune('a'+i)), Serial: "01",
					NotAfter: now.Add(time.Hour), CreatedAt: now})
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					ok++
				} else if certfleet.ErrorCode(err) != certfleet.EUNAUTHORIZED {
					t.Errorf("racing Enroll: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok != 1 {
			t.Errorf("%d of 8 enrollments with one token at once succeeded, want exactly 1", ok)
		}
	})
	t.Run("RenewRevoke", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		now := time.Now()
		tok := newEnrollToken(t, s, now.Add(time.Hour))
		if _, err := s.Enroll(ctx, tok.Hash, certfleet.Identity{ID: "idn_r", Name: "db1", Serial: "01", NotAfter: now.Add(time.Hour), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		later := now.Add(time.Minute)
		if err := s.RenewIdentity(ctx, "idn_r", "02", later.Add(time.Hour), later); err != nil {
			t.Fatalf("RenewIdentity: %v", err)
		}
		got, _ := s.Identity(ctx, "idn_r")
		if got.Serial != "02" || !got.NotAfter.Equal(later.Add(time.Hour).Truncate(time.Microsecond)) && !got.NotAfter.Equal(later.Add(time.Hour)) {
			t.Errorf("after renewal: %+v", got)
		}
		var changes <-chan struct{}
		if n, ok := s.(certfleet.Notifier); ok {
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			changes = n.Changes(cctx)
			drain(changes)
		}
		if err := s.RevokeIdentity(ctx, "idn_r", later); err != nil {
			t.Fatalf("RevokeIdentity: %v", err)
		}
		if changes != nil {
			select {
			case <-changes:
			case <-time.After(5 * time.Second):
				t.Errorf("RevokeIdentity sent no notification to the instances sharing the store")
			}
		}
		if err := s.RevokeIdentity(ctx, "idn_r", later.Add(time.Hour)); err != nil {
			t.Fatalf("RevokeIdentity again: %v", err)
		}
		got, _ = s.Identity(ctx, "idn_r")
		if !got.Revoked() || got.RevokedAt.Sub(later).Abs() > time.Millisecond {
			t.Errorf("revoking again must keep the first time: %v", got.RevokedAt)
		}
		if err := s.RenewIdentity(ctx, "idn_r", "03", later.Add(2*time.Hour), later); certfleet.ErrorCode(err) != certfleet.EUNAUTHORIZED {
			t.Errorf("RenewIdentity of a revoked identity: %v, want EUNAUTHORIZED", err)
		}
		if err := s.RevokeIdentity(ctx, "idn_none", later); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			t.Errorf("RevokeIdentity of an unknown identity: %v, want ENOTFOUND", err)
		}
		if ids, err := s.Identities(ctx); err != nil || len(ids) != 1 || ids[0].ID != "idn_r" {
			t.Errorf("Identities = %+v, %v", ids, err)
		}
	})
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		case <-time.After(200 * time.Millisecond):
			return
		}
	}
}

func newEnrollToken(t *testing.T, s certfleet.IdentityStore, expires time.Time) certfleet.EnrollToken {
	t.Helper()
	id, _, hash := certfleet.NewEnrollTokenSecret()
	tok := certfleet.EnrollToken{ID: id, Description: "test", Names: []string{"web1.example.org", "*.web1.example.org"},
		Permissions: []certfleet.Permission{certfleet.PermReadKeys}, Tenant: "", Hash: hash,
		CreatedAt: time.Now().Add(-2 * time.Second), ExpiresAt: expires}
	if err := s.CreateEnrollToken(t.Context(), tok); err != nil {
		t.Fatalf("CreateEnrollToken: %v", err)
	}
	return tok
}
