package storetest

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TenantStore is what the tenant contract needs of a store.
type TenantStore interface {
	APIStore
	certfleet.TenantStore
}

// RunTenants runs the contract of certfleet.TenantStore (issue 12) and of
// the tenant of specs, tokens and issuances. newStore returns a new, empty
// store without a master key; newSealed one with a master key.
func RunTenants(t *testing.T, newStore, newSealed func(t *testing.T) TenantStore) {
	t.Run("CRUD", func(t *testing.T) { testTenantCRUD(t, newStore(t)) })
	t.Run("PatternsNeverOverlap", func(t *testing.T) { testTenantOverlap(t, newStore(t)) })
	t.Run("OverlapRace", func(t *testing.T) { testTenantOverlapRace(t, newStore(t)) })
	t.Run("SpecsAndQuota", func(t *testing.T) { testTenantSpecs(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testTenantDelete(t, newStore(t)) })
	t.Run("TenantOfTokensAndIssuances", func(t *testing.T) { testTenantColumns(t, newStore(t)) })
	t.Run("AccountSettings", func(t *testing.T) { testAccountSettings(t, newStore(t), newSealed(t)) })
}

func tenantSpec(name, tenant string, ids ...string) certfleet.CertificateSpec {
	sp := NewSpec(name)
	sp.Source, sp.Tenant, sp.Identifiers = certfleet.SourceAPI, tenant, nil
	for _, v := range ids {
		sp.Identifiers = append(sp.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: v})
	}
	return sp
}

func testTenantCRUD(t *testing.T, s TenantStore) {
	ctx := t.Context()
	in := certfleet.Tenant{Name: "acme", Description: "customer 1", Names: []string{"acme.example", "*.acme.example"},
		Account: "acme-le", MaxNames: 10, OrdersPerWeek: 20}
	created, err := s.CreateTenant(ctx, in)
	if err != nil || created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Fatalf("CreateTenant = %+v, %v", created, err)
	}
	if _, err := s.CreateTenant(ctx, in); certfleet.ErrorCode(err) != certfleet.ECONFLICT {
		t.Fatalf("CreateTenant again: %v, want ECONFLICT", err)
	}
	got, err := s.Tenant(ctx, "acme")
	if err != nil || got.Description != "customer 1" || !slices.Equal(got.Names, in.Names) || got.Account != "acme-le" ||
		got.MaxNames != 10 || got.OrdersPerWeek != 20 || got.CreatedAt.Sub(created.CreatedAt).Abs() > timeSlack {
		t.Fatalf("Tenant = %+v, %v; want %+v", got, err, created)
	}
	time.Sleep(2 * time.Millisecond)
	in.MaxNames, in.Names = 0, []string{"acme.example"}
	upd, err := s.UpdateTenant(ctx, in)
	if err != nil || !upd.UpdatedAt.After(created.CreatedAt) || upd.CreatedAt.Sub(created.CreatedAt).Abs() > timeSlack {
		t.Fatalf("UpdateTenant = %+v, %v; want CreatedAt kept, UpdatedAt moved", upd, err)
	}
	if got, _ := s.Tenant(ctx, "acme"); got.MaxNames != 0 || len(got.Names) != 1 {
		t.Fatalf("after update: %+v", got)
	}
	if _, err := s.UpdateTenant(ctx, certfleet.Tenant{Name: "nobody", Names: []string{"n.example"}}); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("UpdateTenant unknown: %v, want ENOTFOUND", err)
	}
	if _, err := s.Tenant(ctx, "nobody"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("Tenant unknown: %v, want ENOTFOUND", err)
	}
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "Bad Name", Names: []string{"b.example"}}); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Fatalf("invalid tenant: %v, want EINVALID", err)
	}
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "beta", Names: []string{"beta.example"}}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Tenants(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "acme" || all[1].Name != "beta" {
		t.Fatalf("Tenants = %+v, %v; want acme, beta", all, err)
	}
}

// testTenantOverlap: a name is never two tenants': overlapping patterns are
// refused on creation and on update.
func testTenantOverlap(t *testing.T, s TenantStore) {
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "a", Names: []string{"*.a.example"}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "b", Names: []string{"b.example", "shop.a.example"}})
	if certfleet.ErrorCode(err) != certfleet.ECONFLICT || !strings.Contains(err.Error(), "*.a.example") {
		t.Fatalf("overlapping tenant: %v, want ECONFLICT naming the pattern", err)
	}
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "b", Names: []string{"b.example"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateTenant(ctx, certfleet.Tenant{Name: "b", Names: []string{"b.example", "*.a.example"}}); certfleet.ErrorCode(err) != certfleet.ECONFLICT {
		t.Fatalf("update into overlap: %v, want ECONFLICT", err)
	}
	// A tenant may change its own patterns freely.
	if _, err := s.UpdateTenant(ctx, certfleet.Tenant{Name: "a", Names: []string{"*.a.example", "a.example"}}); err != nil {
		t.Fatal(err)
	}
}

// testTenantOverlapRace: tenants with overlapping patterns created at once
// (on PostgreSQL: by connections as separate as instances) never both win.
func testTenantOverlapRace(t *testing.T, s TenantStore) {
	ctx := t.Context()
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range n {
		wg.Go(func() {
			_, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "t" + string(rune('a'+i)), Names: []string{"*.race.example"}})
			mu.Lock()
			defer mu.Unlock()
			switch certfleet.ErrorCode(err) {
			case "":
				wins++
			case certfleet.ECONFLICT:
			default:
				t.Errorf("CreateTenant: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d tenants with the pattern *.race.example were created, want exactly 1", wins)
	}
}

// testTenantSpecs: a tenant's spec needs the tenant; another tenant's spec
// is not taken over; the name quota holds, and fewer names are always
// accepted; the filter and the usage count the tenant's only.
func testTenantSpecs(t *testing.T, s TenantStore) {
	ctx := t.Context()
	if _, err := s.PutSpec(ctx, tenantSpec("x.a.example", "a", "x.a.example")); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Fatalf("spec of a tenant that does not exist: %v, want EINVALID", err)
	}
	for _, tn := range []certfleet.Tenant{
		{Name: "a", Names: []string{"*.a.example"}, MaxNames: 3},
		{Name: "b", Names: []string{"*.b.example"}},
	} {
		if _, err := s.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutSpec(ctx, tenantSpec("pack-1", "a", "x.a.example", "y.a.example")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Spec(ctx, "pack-1"); err != nil || got.Tenant != "a" {
		t.Fatalf("Spec = %+v, %v; want tenant a", got, err)
	}
	if _, err := s.PutSpec(ctx, tenantSpec("pack-1", "b", "x.b.example")); certfleet.ErrorCode(err) != certfleet.ECONFLICT {
		t.Fatalf("another tenant's spec taken over: %v, want ECONFLICT", err)
	}
	if _, err := s.PutSpec(ctx, tenantSpec("z.a.example", "a", "z.a.example")); err != nil {
		t.Fatalf("third name within a quota of 3: %v", err)
	}
	_, err := s.PutSpec(ctx, tenantSpec("w.a.example", "a", "w.a.example"))
	if certfleet.ErrorCode(err) != certfleet.EQUOTA || !strings.Contains(err.Error(), "at most 3") || !strings.Contains(err.Error(), "max_names") {
		t.Fatalf("fourth name over a quota of 3: %v, want EQUOTA saying the quota and how to raise it", err)
	}
	if _, err := s.PutSpec(ctx, tenantSpec("pack-1", "a", "x.a.example", "y.a.example", "v.a.example")); certfleet.ErrorCode(err) != certfleet.EQUOTA {
		t.Fatalf("a name added to a pack over the quota: %v, want EQUOTA", err)
	}
	// Lowered below what it holds: it keeps it, and may shrink.
	if _, err := s.UpdateTenant(ctx, certfleet.Tenant{Name: "a", Names: []string{"*.a.example"}, MaxNames: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSpec(ctx, tenantSpec("pack-1", "a", "x.a.example")); err != nil {
		t.Fatalf("removing a name while over the quota: %v", err)
	}
	if _, err := s.PutSpec(ctx, tenantSpec("pack-1", "a", "x.a.example")); err != nil {
		t.Fatalf("an unchanged spec while over the quota: %v", err)
	}
	u, err := s.TenantUsage(ctx, "a")
	if err != nil || u.Names != 2 || u.Certificates != 2 {
		t.Fatalf("TenantUsage = %+v, %v; want 2 names in 2 certificates", u, err)
	}
	if _, err := s.PutSpec(ctx, tenantSpec("x.b.example", "b", "x.b.example")); err != nil {
		t.Fatal(err)
	}
	specs, err := s.Specs(ctx, certfleet.SpecFilter{Tenant: "a"})
	if err != nil || len(specs) != 2 || specs[0].Tenant != "a" || specs[1].Tenant != "a" {
		t.Fatalf("Specs of tenant a = %+v, %v", specs, err)
	}
	if all, _ := s.Specs(ctx, certfleet.SpecFilter{}); len(all) != 3 {
		t.Fatalf("every spec: %d, want 3", len(all))
	}
	// A withdrawn spec of another tenant may be taken over: it becomes
	// the new tenant's, with a new revision (a new certificate, new key).
	if err := s.WithdrawSpec(ctx, "x.b.example", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateTenant(ctx, certfleet.Tenant{Name: "a", Names: []string{"*.a.example"}}); err != nil {
		t.Fatal(err)
	}
	moved := tenantSpec("x.b.example", "a", "x.b.example")
	if _, err := s.PutSpec(ctx, moved); err != nil {
		t.Fatalf("taking over a withdrawn spec: %v", err)
	}
	if got, err := s.Spec(ctx, "x.b.example"); err != nil || got.Tenant != "a" || got.Disabled {
		t.Fatalf("spec after the move: %+v, %v; want tenant a's, enabled", got, err)
	}
}

func testTenantDelete(t *testing.T, s TenantStore) {
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "gone", Names: []string{"*.gone.example"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSpec(ctx, tenantSpec("x.gone.example", "gone", "x.gone.example")); err != nil {
		t.Fatal(err)
	}
	id, _, hash := certfleet.NewTokenSecret()
	if err := s.CreateToken(ctx, certfleet.Token{ID: id, Names: []string{"*.gone.example"}, Permissions: []certfleet.Permission{certfleet.PermReadKeys},
		Tenant: "gone", Hash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, err := s.DeleteTenant(ctx, "gone", false)
	if certfleet.ErrorCode(err) != certfleet.ECONFLICT || !strings.Contains(err.Error(), "x.gone.example") || !strings.Contains(err.Error(), "withdraw") {
		t.Fatalf("deleting a tenant with certificates: %v, want ECONFLICT naming them and what to do", err)
	}
	if _, err := s.Tenant(ctx, "gone"); err != nil {
		t.Fatalf("the refused deletion deleted: %v", err)
	}
	if tok, _ := s.Token(ctx, id); tok.Revoked() {
		t.Fatal("the refused deletion revoked the tenant's token")
	}
	res, err := s.DeleteTenant(ctx, "gone", true)
	if err != nil || !slices.Equal(res.Withdrawn, []string{"x.gone.example"}) || !slices.Equal(res.TokensRevoked, []string{id}) {
		t.Fatalf("DeleteTenant withdraw = %+v, %v", res, err)
	}
	if sp, err := s.Spec(ctx, "x.gone.example"); err != nil || !sp.Disabled {
		t.Fatalf("the tenant's spec after deletion: %+v, %v; want withdrawn, kept", sp, err)
	}
	if tok, _ := s.Token(ctx, id); !tok.Revoked() {
		t.Fatal("the deleted tenant's token is still valid")
	}
	if _, err := s.Tenant(ctx, "gone"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("deleted tenant: %v", err)
	}
	if _, err := s.DeleteTenant(ctx, "gone", true); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("deleting again: %v, want ENOTFOUND", err)
	}
	// Its patterns are free again.
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "next", Names: []string{"*.gone.example"}}); err != nil {
		t.Fatal(err)
	}
}

func testTenantColumns(t *testing.T, s TenantStore) {
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "acme", Names: []string{"*.acme.example"}}); err != nil {
		t.Fatal(err)
	}
	id, secret, hash := certfleet.NewTokenSecret()
	if err := s.CreateToken(ctx, certfleet.Token{ID: id, Names: []string{"*.acme.example"}, Permissions: []certfleet.Permission{certfleet.PermReadKeys},
		Tenant: "acme", Hash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.TokenByHash(ctx, certfleet.HashTokenSecret(secret)); err != nil || tok.Tenant != "acme" {
		t.Fatalf("TokenByHash = %+v, %v; want tenant acme", tok, err)
	}
	sp := tenantSpec("www.acme.example", "acme", "www.acme.example")
	if _, err := s.PutSpec(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	iss := NewIssuance(sp, certfleet.ECDSAP256)
	iss.Tenant = "acme"
	key := certfleet.JobKey{Spec: sp.Name, KeyType: certfleet.ECDSAP256}
	stored, err := s.CompleteIssuance(ctx, "o", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)},
		certfleet.Attempt{JobKey: key, Instance: "o", StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: certfleet.OutcomeIssued})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Issuance(ctx, stored.ID); err != nil || got.Tenant != "acme" {
		t.Fatalf("Issuance = tenant %q, %v; want acme", got.Tenant, err)
	}
}

func testAccountSettings(t *testing.T, plain, sealed TenantStore) {
	ctx := t.Context()
	a := certfleet.AccountSettings{Name: "acme-le", Directory: "https://ca.example/dir", Email: "ops@acme.example"}
	put, err := plain.PutAccountSettings(ctx, a)
	if err != nil || put.CreatedAt.IsZero() {
		t.Fatalf("PutAccountSettings = %+v, %v", put, err)
	}
	a.EABKeyID, a.EABHMACKey = "kid-1", "c2VjcmV0LWhtYWMta2V5"
	if _, err := plain.PutAccountSettings(ctx, a); certfleet.ErrorCode(err) != certfleet.EINVALID || strings.Contains(err.Error(), a.EABHMACKey) {
		t.Fatalf("an EAB MAC key without a master key: %v; want EINVALID, not quoting it", err)
	}
	roots := []byte("-----BEGIN CERTIFICATE-----\nroots\n-----END CERTIFICATE-----\n")
	a.TrustedRootsPEM = roots
	if _, err := sealed.PutAccountSettings(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := sealed.AccountSettings(ctx, "acme-le")
	if err != nil || got.EABHMACKey != a.EABHMACKey || got.EABKeyID != "kid-1" || !bytes.Equal(got.TrustedRootsPEM, roots) || got.Email != a.Email {
		t.Fatalf("AccountSettings = %+v, %v", got, err)
	}
	list, err := sealed.AccountSettingsList(ctx)
	if err != nil || len(list) != 1 || list[0].EABHMACKey != "" || list[0].EABKeyID != "kid-1" {
		t.Fatalf("AccountSettingsList = %+v, %v; want one, without its MAC key", list, err)
	}
	time.Sleep(2 * time.Millisecond)
	a.Email = "new@acme.example"
	again, err := sealed.PutAccountSettings(ctx, a)
	if err != nil || again.CreatedAt.Sub(got.CreatedAt).Abs() > timeSlack || !again.UpdatedAt.After(got.UpdatedAt) {
		t.Fatalf("replace = %+v, %v; want CreatedAt kept, UpdatedAt moved (was %+v)", again, err, got)
	}
	// In use: refused; then deleted.
	if _, err := sealed.CreateTenant(ctx, certfleet.Tenant{Name: "acme", Names: []string{"acme.example"}, Account: "acme-le"}); err != nil {
		t.Fatal(err)
	}
	if err := sealed.DeleteAccountSettings(ctx, "acme-le"); certfleet.ErrorCode(err) != certfleet.ECONFLICT || !strings.Contains(err.Error(), "tenant acme") {
		t.Fatalf("deleting an account a tenant uses: %v, want ECONFLICT naming it", err)
	}
	if _, err := sealed.UpdateTenant(ctx, certfleet.Tenant{Name: "acme", Names: []string{"acme.example"}}); err != nil {
		t.Fatal(err)
	}
	sp := tenantSpec("direct", "", "direct.example")
	sp.Account = "acme-le"
	if _, err := sealed.PutSpec(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if err := sealed.DeleteAccountSettings(ctx, "acme-le"); certfleet.ErrorCode(err) != certfleet.ECONFLICT || !strings.Contains(err.Error(), "certificate direct") {
		t.Fatalf("deleting an account a certificate uses: %v, want ECONFLICT naming it", err)
	}
	if err := sealed.WithdrawSpec(ctx, "direct", false); err != nil {
		t.Fatal(err)
	}
	if err := sealed.DeleteAccountSettings(ctx, "acme-le"); err != nil {
		t.Fatal(err)
	}
	if _, err := sealed.AccountSettings(ctx, "acme-le"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("deleted account: %v", err)
	}
	if err := sealed.DeleteAccountSettings(ctx, "acme-le"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("deleting again: %v, want ENOTFOUND", err)
	}
}
