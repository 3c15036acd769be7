package config

import (
	"maps"
	pathpkg "path"
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
)

// exportKeys are the keys of [export].
var exportKeys = []string{"dir", "layout", "vault_password_file", "after_renewal", "hosts"}

// DefaultExportLayout is [export] layout's default (export.DefaultLayout,
// which this package does not import).
const DefaultExportLayout = "host_files/{host}/{certificate}/{file}"

// Export configures certfleet export: the certificates each host needs,
// written into an Ansible inventory tree with the keys vaulted ([export];
// see docs/export.md). The package reads no file: the daemon reads
// VaultPasswordFile, and package export checks Layout.
type Export struct {
	// Dir is the inventory's directory (absolute); "" when [export] is
	// absent.
	Dir string
	// Layout places each file under Dir. Default DefaultExportLayout.
	Layout string
	// VaultPasswordFile holds the Ansible Vault password (absolute path).
	VaultPasswordFile string
	// AfterRenewal makes serve export at its start and after every new
	// certificate.
	AfterRenewal bool
	// Hosts maps inventory host names to the name patterns of the
	// certificates they need.
	Hosts map[string][]string
}

// HostNames returns the names of the hosts, sorted.
func (e Export) HostNames() []string { return slices.Sorted(maps.Keys(e.Hosts)) }

// export decodes [export].
func (d *decoder) export(top *table, cfg *Config) {
	t := d.subtable(top, "export")
	if t == nil {
		return
	}
	defer d.unknown(t, exportKeys)
	e := Export{Layout: DefaultExportLayout}
	if e.Dir = d.path(t, "dir"); e.Dir == "" {
		d.problemf(t.p.key("dir"), "required: the inventory directory the files go under, as in \"/srv/ansible/inventory\"")
	}
	if s, p, ok := d.str(t, "layout"); ok {
		switch {
		case !strings.Contains(s, "{host}") || !strings.Contains(s, "{certificate}") || !strings.Contains(s, "{file}"):
			d.problemf(p, "%q must contain {host}, {certificate} and {file}, as in %q", s, DefaultExportLayout)
		case strings.HasPrefix(s, "/") || slices.Contains(strings.Split(s, "/"), ".."):
			d.problemf(p, "%q must be a relative path without '..': it is placed under dir", s)
		default:
			e.Layout = s
		}
	}
	if e.VaultPasswordFile = d.path(t, "vault_password_file"); e.VaultPasswordFile == "" {
		d.problemf(t.p.key("vault_password_file"), "required: the file holding the Ansible Vault password the keys are encrypted with (as ansible-vault --vault-password-file reads it)")
	}
	if v, p, ok := d.get(t, "after_renewal"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		e.AfterRenewal = b
	}
	hosts := d.subtable(t, "hosts")
	if hosts == nil {
		d.problemf(t.p.key("hosts"), "required: a table of hosts and the certificates each needs, as in web1 = [\"web\", \"*.example.org\"]")
	} else {
		e.Hosts = make(map[string][]string)
		for _, name := range slices.Sorted(maps.Keys(hosts.m)) {
			list, paths, p, ok := d.strList(hosts, name)
			if !ok {
				continue
			}
			if certfleet.ValidateAgentName(name) != nil { // the same rule as agents: host names
				d.problemf(p, "host name %q: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
				continue
			}
			if len(list) == 0 {
				d.problemf(p, "empty: list the name patterns of the certificates %s needs, or remove it", name)
			}
			for i, s := range list {
				if _, err := pathpkg.Match(s, ""); err != nil || s == "" {
					d.problemf(paths[i], "%q is not a name pattern (* matches any characters, ? one, [a-z] a class)", s)
					continue
				}
				e.Hosts[name] = append(e.Hosts[name], s)
			}
		}
	}
	cfg.Export = e
}
