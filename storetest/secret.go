package storetest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunSecrets is the contract of certfleet.SecretStore. newStore must return
// a new, empty, open store that has a master key (secrets are only kept
// sealed) and close it when t ends.
func RunSecrets(t *testing.T, newStore func(t *testing.T) certfleet.SecretStore) {
	t.Run("PutGetReplace", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if err := s.PutSecret(ctx, "tsig-example", []byte("c2VjcmV0IG9uZQ==")); err != nil {
			t.Fatal(err)
		}
		got, err := s.Secret(ctx, "tsig-example")
		if err != nil || string(got) != "c2VjcmV0IG9uZQ==" {
			t.Fatalf("Secret = %q, %v", got, err)
		}
		before, err := s.Secrets(ctx)
		if err != nil || len(before) != 1 {
			t.Fatalf("Secrets = %v, %v", before, err)
		}
		time.Sleep(2 * time.Millisecond)
		if err := s.PutSecret(ctx, "tsig-example", []byte("two")); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Secret(ctx, "tsig-example"); err != nil || string(got) != "two" {
			t.Fatalf("after replace: %q, %v", got, err)
		}
		after, err := s.Secrets(ctx)
		if err != nil || len(after) != 1 {
			t.Fatalf("Secrets after replace = %v, %v", after, err)
		}
		if !after[0].CreatedAt.Equal(before[0].CreatedAt) || !after[0].UpdatedAt.After(before[0].UpdatedAt) {
			t.Errorf("replace must keep CreatedAt and move UpdatedAt: before %+v after %+v", before[0], after[0])
		}
	})
	t.Run("ListSortedWithoutValues", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		for _, n := range []string{"zeta", "alpha", "mid.dle_1"} {
			if err := s.PutSecret(ctx, n, []byte("value-of-"+n)); err != nil {
				t.Fatal(err)
			}
		}
		infos, err := s.Secrets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, i := range infos {
			names = append(names, i.Name)
			if i.CreatedAt.IsZero() || i.UpdatedAt.IsZero() {
				t.Errorf("%s: dates not set: %+v", i.Name, i)
			}
		}
		if strings.Join(names, ",") != "alpha,mid.dle_1,zeta" {
			t.Errorf("Secrets order = %v, want by name", names)
		}
	})
	t.Run("NotFoundAndDelete", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if _, err := s.Secret(ctx, "absent"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND || !strings.Contains(err.Error(), "certfleet secret set absent") {
			t.Errorf("missing secret: %v, want ENOTFOUND telling how to add it", err)
		}
		if err := s.DeleteSecret(ctx, "absent"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			t.Errorf("delete missing: %v, want ENOTFOUND", err)
		}
		if err := s.PutSecret(ctx, "gone", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSecret(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Secret(ctx, "gone"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			t.Errorf("after delete: %v, want ENOTFOUND", err)
		}
	})
	t.Run("BadInput", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		value := []byte("hunter2-very-secret")
		for _, name := range []string{"", "Upper", "-lead", "sp ace", strings.Repeat("a", 65), "a/b"} {
			if err := s.PutSecret(ctx, name, value); certfleet.ErrorCode(err) != certfleet.EINVALID {
				t.Errorf("PutSecret(%q): %v, want EINVALID", name, err)
			}
		}
		for _, v := range [][]byte{nil, {}, bytes.Repeat([]byte("x"), certfleet.MaxSecretLen+1)} {
			err := s.PutSecret(ctx, "ok", v)
			if certfleet.ErrorCode(err) != certfleet.EINVALID {
				t.Errorf("PutSecret(len %d): %v, want EINVALID", len(v), err)
			}
		}
		if err := s.PutSecret(ctx, "Bad Name", value); err != nil && strings.Contains(err.Error(), string(value)) {
			t.Errorf("an error quotes the secret's value: %v", err)
		}
	})
}
