package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestExportParsed(t *testing.T) {
	cfg := mustParse(t, ca+`
[export]
dir = "ansible/inventory"
vault_password_file = "/etc/certfleet/vault-password"
after_renewal = true

[export.hosts]
"web1.example.org" = ["web", "*.example.org"]
mx1 = ["mail"]
`)
	want := Export{Dir: "/etc/certfleet/ansible/inventory", Layout: DefaultExportLayout, VaultPasswordFile: "/etc/certfleet/vault-password",
		AfterRenewal: true, Hosts: map[string][]string{"web1.example.org": {"web", "*.example.org"}, "mx1": {"mail"}}}
	if !reflect.DeepEqual(cfg.Export, want) {
		t.Errorf("Export =\n%+v\nwant\n%+v", cfg.Export, want)
	}
	if got := cfg.Export.HostNames(); strings.Join(got, " ") != "mx1 web1.example.org" {
		t.Errorf("HostNames = %v", got)
	}
	st, err := cfg.StagingConfig()
	if err != nil {
		t.Fatal(err)
	}
	if st.Export.Dir != "" || cfg.Export.Dir == "" {
		t.Errorf("staging export = %+v; want none: a rehearsal never writes production's inventory", st.Export)
	}
	if cfg := mustParse(t, ca); cfg.Export.Dir != "" {
		t.Errorf("no [export]: %+v", cfg.Export)
	}
}

func TestExportProblems(t *testing.T) {
	const base = "dir = \"/srv/inv\"\nvault_password_file = \"/p\"\n"
	for _, tc := range []struct{ src, want string }{
		{"vault_password_file = \"/p\"\n[export.hosts]\nh = [\"web\"]\n", "export.dir: required"},
		{"dir = \"/srv/inv\"\n[export.hosts]\nh = [\"web\"]\n", "export.vault_password_file: required"},
		{base, "export.hosts: required"},
		{base + "layout = \"{host}/{file}\"\n[export.hosts]\nh = [\"web\"]\n", "export.layout: \"{host}/{file}\" must contain {host}, {certificate} and {file}"},
		{base + "layout = \"/etc/{host}/{certificate}/{file}\"\n[export.hosts]\nh = [\"web\"]\n", "must be a relative path without '..'"},
		{base + "after_renewal = \"yes\"\n[export.hosts]\nh = [\"web\"]\n", "export.after_renewal: must be true or false"},
		{base + "[export.hosts]\n\"../etc\" = [\"web\"]\n", "host name \"../etc\""},
		{base + "[export.hosts]\nh = []\n", "export.hosts.h: empty"},
		{base + "[export.hosts]\nh = [\"[web\"]\n", "export.hosts.h[0]: \"[web\" is not a name pattern"},
		{base + "[export.hosts]\nh = \"web\"\n", "export.hosts.h: must be an array of strings"},
		{base + "vault_password = \"x\"\n[export.hosts]\nh = [\"web\"]\n", "export.vault_password: unknown key"},
	} {
		problems := mustProblems(t, ca+"[export]\n"+tc.src)
		var all []string
		for _, p := range problems {
			all = append(all, p.String())
		}
		text := strings.Join(all, "\n")
		if len(problems) != 1 || !strings.Contains(text, tc.want) {
			t.Errorf("%q:\n got %s\nwant one problem with %q", tc.src, text, tc.want)
		}
	}
}
