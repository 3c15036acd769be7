package export_test

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/export"
)

func TestCheckLayout(t *testing.T) {
	for _, ok := range []string{
		export.DefaultLayout,
		"host_vars/{host}/files/{certificate}-{key_type}-{file}",
		"{host}/{certificate}/{family}/{file}",
	} {
		if err := export.CheckLayout(ok); err != nil {
			t.Errorf("CheckLayout(%q) = %v, want nil", ok, err)
		}
	}
	for _, tc := range []struct{ layout, want string }{
		{"host_files/{certificate}/{file}", "must contain {host}"},
		{"host_files/{host}/{file}", "must contain {certificate}"},
		{"host_files/{host}/{certificate}", "must contain {file}"},
		{"/etc/{host}/{certificate}/{file}", "relative path"},
		{"../{host}/{certificate}/{file}", "no '..'"},
		{"{host}/../../{certificate}/{file}", "no '..'"},
		{"{host}/{certificate}/{name}/{file}", "unknown placeholder"},
		{"{host}/{certificate}/{file}}", "unknown placeholder"},
	} {
		err := export.CheckLayout(tc.layout)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckLayout(%q) = %v, want an error with %q", tc.layout, err, tc.want)
		}
	}
}

func TestHostNeeds(t *testing.T) {
	spec := certfleet.CertificateSpec{Name: "web", Identifiers: []certfleet.Identifier{
		{Type: certfleet.IdentifierDNS, Value: "www.example.org"}, {Type: certfleet.IdentifierDNS, Value: "*.shop.example.org"}}}
	for _, tc := range []struct {
		patterns []string
		want     bool
	}{
		{[]string{"web"}, true},
		{[]string{"we?"}, true},
		{[]string{"mail", "w*"}, true},
		{[]string{"*.example.org"}, true},      // www.example.org, and *.shop.example.org too
		{[]string{"*.shop.example.org"}, true}, // the wildcard identifier itself
		{[]string{"www.example.com"}, false},
		{[]string{"webmail"}, false},
		{nil, false},
	} {
		if got := (export.Host{Name: "h", Certificates: tc.patterns}).Needs(spec); got != tc.want {
			t.Errorf("patterns %q: Needs = %v, want %v", tc.patterns, got, tc.want)
		}
	}
}
