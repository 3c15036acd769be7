package certfleet_test

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
)

func TestPatternsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"*.example.org", "www.example.org", true},
		{"*.example.org", "*.shop.example.org", true},
		{"example.org", "*.example.org", false}, // "*.example.org" does not cover the apex
		{"a.example.org", "b.example.org", false},
		{"*.a.example", "*.b.example", false},
		{"*", "x.example", true},
		{"x.example", "X.example", true},
	} {
		if got := certfleet.PatternsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("PatternsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := certfleet.PatternsOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("PatternsOverlap(%q, %q) = %v, want %v (symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestTenantValidate(t *testing.T) {
	ok := certfleet.Tenant{Name: "acme", Names: []string{"acme.example", "*.acme.example"}, Account: "acme-le", MaxNames: 10}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid tenant: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*certfleet.Tenant)
		want string
	}{
		{"bad name", func(t *certfleet.Tenant) { t.Name = "Acme Corp" }, "tenant name"},
		{"no names", func(t *certfleet.Tenant) { t.Names = nil }, "at least one name pattern"},
		{"star", func(t *certfleet.Tenant) { t.Names = []string{"*"} }, "only the operator"},
		{"not normalised", func(t *certfleet.Tenant) { t.Names = []string{"bücher.example"} }, "normalised"},
		{"overlap within", func(t *certfleet.Tenant) { t.Names = []string{"*.acme.example", "www.acme.example"} }, "overlap"},
		{"negative quota", func(t *certfleet.Tenant) { t.OrdersPerWeek = -1 }, "negative"},
		{"bad account", func(t *certfleet.Tenant) { t.Account = "a b" }, "account name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := ok
			tn.Names = append([]string(nil), ok.Names...)
			tc.mod(&tn)
			err := tn.Validate()
			if certfleet.ErrorCode(err) != certfleet.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want EINVALID mentioning %q", err, tc.want)
			}
		})
	}
}

func TestCheckTenantPatterns(t *testing.T) {
	a := certfleet.Tenant{Name: "a", Names: []string{"*.a.example"}}
	b := certfleet.Tenant{Name: "b", Names: []string{"b.example", "shop.a.example"}}
	err := certfleet.CheckTenantPatterns(b, []certfleet.Tenant{a, b})
	if certfleet.ErrorCode(err) != certfleet.ECONFLICT || !strings.Contains(err.Error(), `"shop.a.example" overlaps "*.a.example" of tenant "a"`) {
		t.Errorf("overlapping tenants: %v, want ECONFLICT naming both", err)
	}
	b.Names = []string{"b.example"}
	if err := certfleet.CheckTenantPatterns(b, []certfleet.Tenant{a, b}); err != nil {
		t.Errorf("disjoint tenants: %v", err)
	}
}

func TestCheckTenantToken(t *testing.T) {
	tn := certfleet.Tenant{Name: "acme", Names: []string{"*.acme.example", "acme.example"}}
	read := []certfleet.Permission{certfleet.PermReadKeys}
	for _, tc := range []struct {
		names []string
		perms []certfleet.Permission
		ok    bool
	}{
		{[]string{"*.acme.example"}, read, true},
		{[]string{"www.acme.example", "acme.example"}, read, true},
		{[]string{"*.shop.acme.example"}, read, true},
		{[]string{"*"}, read, false},
		{[]string{"other.example"}, read, false},
		{[]string{"acme.example"}, []certfleet.Permission{certfleet.PermAdmin}, false},
		{nil, read, false},
	} {
		err := certfleet.CheckTenantToken(certfleet.Token{Names: tc.names, Permissions: tc.perms}, tn)
		if (err == nil) != tc.ok {
			t.Errorf("token %v %v for tenant %v: %v, want ok %v", tc.names, tc.perms, tn.Names, err, tc.ok)
		}
	}
}

func TestAccountSettingsValidate(t *testing.T) {
	ok := certfleet.AccountSettings{Name: "acme-le", Directory: "https://ca.example/dir", Email: "ops@acme.example",
		EABKeyID: "kid-1", EABHMACKey: "c2VjcmV0LWhtYWMta2V5"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := ok
	bad.EABHMACKey = "not base64 !! secret"
	err := bad.Validate()
	if err == nil || strings.Contains(err.Error(), "secret !!") {
		t.Errorf("bad MAC key: %v; want an error that does not quote it", err)
	}
	for _, mod := range []func(*certfleet.AccountSettings){
		func(a *certfleet.AccountSettings) { a.Name = certfleet.DefaultAccount },
		func(a *certfleet.AccountSettings) { a.Directory = "http://ca.example/dir" },
		func(a *certfleet.AccountSettings) { a.EABHMACKey = "" },
		func(a *certfleet.AccountSettings) { a.Email = "not an address" },
	} {
		a := ok
		mod(&a)
		if certfleet.ErrorCode(a.Validate()) != certfleet.EINVALID {
			t.Errorf("%+v: Validate = %v, want EINVALID", a, a.Validate())
		}
	}
}
