package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// DefaultPropagationTimeout is how long a dns-01 record may take to reach
// every authoritative nameserver.
const DefaultPropagationTimeout = 2 * time.Minute

// DNS provider types.
const (
	DNSProviderRFC2136 = "rfc2136"
	DNSProviderExec    = "exec"
	DNSProviderWebhook = "webhook"
	DNSProviderACMEDNS = "acme-dns"
)

// DNS01 is the [dns01] table: how dns-01 records are written and checked.
type DNS01 struct {
	// PropagationTimeout bounds the wait for a record to be served by
	// every authoritative nameserver. Default DefaultPropagationTimeout.
	PropagationTimeout time.Duration
	// Nameservers are the recursive resolvers ("host:port") used to find
	// zones, CNAME targets and nameservers. Default: /etc/resolv.conf's.
	Nameservers []string
	// AuthoritativePort is the port authoritative nameservers are asked
	// on; 0 means 53. Only tests and unusual set-ups change it.
	AuthoritativePort int
	// Providers are the [dns01.providers.NAME] tables, by name.
	Providers map[string]DNSProvider
	// DefaultProvider serves dns-01 names no certificate of the file
	// routes (names requested over the API): [defaults] dns_provider, else
	// the only provider there is, else "".
	DefaultProvider string
}

// DNSProvider is one [dns01.providers.NAME] table. Which fields apply
// depends on Type. Secret, Password and BearerToken are secrets: String,
// GoString and LogValue leave them out.
type DNSProvider struct {
	Name string
	Type string // DNSProviderRFC2136, DNSProviderExec, DNSProviderWebhook or DNSProviderACMEDNS

	// rfc2136: Server ("host:port", default the zone's SOA MNAME), Zone
	// (default found by SOA walk), the TSIG key (KeyName, Algorithm
	// default "hmac-sha256", Secret base64) and AllowInsecure (permits
	// hmac-md5 and unsigned updates).
	Server, Zone               string
	KeyName, Algorithm, Secret string
	AllowInsecure              bool

	// exec: Program (absolute path) and Timeout (default 2 minutes).
	Program string
	// Timeout bounds one call of an exec or webhook provider; 0 is the
	// provider's default.
	Timeout time.Duration

	// webhook: URL, BearerToken or Username and Password, CAFile (extra
	// roots, absolute path).
	URL, BearerToken, Username, Password, CAFile string

	// acme-dns: URL is the server's API, AllowFrom the networks updates
	// may come from, CredentialsFile where registrations are kept
	// (default acme-dns-NAME.json next to the state database).
	AllowFrom       []string
	CredentialsFile string

	// Keys holds the settings of a type written through lego
	// (IsLegoDNSProvider), by key name (DNSProviderKeys): numbers and
	// booleans in Go's syntax, files as absolute paths, secrets as given
	// ("store:NAME" until ResolveSecrets). Nil for other types.
	Keys map[string]string
}

// String describes the provider without its secrets.
func (p DNSProvider) String() string {
	s := fmt.Sprintf("dns provider %s (%s)", p.Name, p.Type)
	switch p.Type {
	case DNSProviderRFC2136:
		s += " key " + p.KeyName
	case DNSProviderExec:
		s += " " + p.Program
	case DNSProviderWebhook, DNSProviderACMEDNS:
		s += " " + p.URL
	default:
		s += legoString(p)
	}
	return s
}

// GoString is String, so that %#v cannot print a secret either.
func (p DNSProvider) GoString() string { return p.String() }

// LogValue keeps the secrets out of logs.
func (p DNSProvider) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", p.Name), slog.String("type", p.Type))
}

// caaIdentities are the CAA issuer domains (RFC 8659 §4.2) of the CAs the
// directory aliases name.
var caaIdentities = map[string][]string{
	"https://acme-v02.api.letsencrypt.org/directory":         {"letsencrypt.org"},
	"https://acme-staging-v02.api.letsencrypt.org/directory": {"letsencrypt.org"},
	"https://acme.zerossl.com/v2/DV90":                       {"sectigo.com", "zerossl.com"},
}

// CAA returns the issuer domains a CAA record must name for the account's
// CA to issue (RFC 8659 §4.2): the account's caa_identities when set, else
// the known ones of the directory aliases' CAs, else nil (unknown).
func (c *Config) CAA(account string) []string {
	if account == "" {
		account = certfleet.DefaultAccount
	}
	if ids := c.CAAIdentities[account]; len(ids) > 0 {
		return slices.Clone(ids)
	}
	return slices.Clone(caaIdentities[c.Accounts[account].Directory])
}

var (
	dns01Keys    = []string{"propagation_timeout", "nameservers", "authoritative_port", "providers"}
	providerKeys = map[string][]string{
		DNSProviderRFC2136: {"type", "server", "zone", "key_name", "algorithm", "secret", "allow_insecure"},
		DNSProviderExec:    {"type", "program", "timeout"},
		DNSProviderWebhook: {"type", "url", "bearer_token", "username", "password", "ca_file", "timeout"},
		DNSProviderACMEDNS: {"type", "url", "allow_from", "credentials_file"},
	}
	tsigAlgorithms = []string{"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-md5"}
	caaIdentityRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)
)

// dns01 decodes [dns01].
func (d *decoder) dns01(top *table, cfg *Config) {
	cfg.DNS01 = DNS01{PropagationTimeout: DefaultPropagationTimeout, Providers: map[string]DNSProvider{}}
	t := d.subtable(top, "dns01")
	if t == nil {
		return
	}
	defer d.unknown(t, dns01Keys)
	if s, p, ok := d.str(t, "propagation_timeout"); ok {
		if v := d.duration(p, s); v > 0 {
			cfg.DNS01.PropagationTimeout = v
		} else if s != "" {
			d.problemf(p, "must be positive, as in \"2m\"")
		}
	}
	if list, paths, _, ok := d.strList(t, "nameservers"); ok {
		for i, s := range list {
			host := s
			if h, _, err := net.SplitHostPort(s); err == nil {
				host = h
			}
			if net.ParseIP(strings.Trim(host, "[]")) == nil {
				d.problemf(paths[i], "%q is not an IP address or IP:port (resolvers are given by address)", s)
				continue
			}
			cfg.DNS01.Nameservers = append(cfg.DNS01.Nameservers, s)
		}
	}
	if v, p, ok := d.get(t, "authoritative_port"); ok {
		n, isInt := v.(int64)
		if !isInt || n < 1 || n > 65535 {
			d.problemf(p, "must be a port number (1 to 65535)")
		} else {
			cfg.DNS01.AuthoritativePort = int(n)
		}
	}
	pt := d.subtable(t, "providers")
	if pt == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(pt.m)) {
		st := d.subtable(pt, name)
		if st == nil {
			continue
		}
		if !accountNameRE.MatchString(name) {
			d.problemf(st.p, "provider name %s: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", quoteKey(name))
			continue
		}
		if prov, ok := d.dnsProvider(st, name, cfg); ok {
			cfg.DNS01.Providers[name] = prov
		} else {
			if d.dnsProviderBroken == nil {
				d.dnsProviderBroken = map[string]bool{}
			}
			d.dnsProviderBroken[name] = true
		}
	}
}

func (d *decoder) dnsProvider(t *table, name string, cfg *Config) (DNSProvider, bool) {
	start := d.mark()
	p := DNSProvider{Name: name}
	typ, tp, ok := d.str(t, "type")
	if !ok {
		if _, present := t.m["type"]; !present {
			d.problemf(tp, "required: %s", providerTypeList())
		}
		return p, false
	}
	if IsLegoDNSProvider(typ) {
		p.Type = typ
		d.legoProvider(t, &p)
		return p, d.mark() == start
	}
	keys, known := providerKeys[typ]
	if !known {
		d.problemf(tp, "unknown provider type %q (use %s)", typ, providerTypeList())
		return p, false
	}
	p.Type = typ
	defer d.unknown(t, keys)
	str := func(key string) (string, path, bool) { return d.str(t, key) }
	switch typ {
	case DNSProviderRFC2136:
		if s, sp, ok := str("server"); ok && s != "" {
			host := s
			if h, _, err := net.SplitHostPort(s); err == nil {
				host = h
			}
			if host == "" || strings.ContainsAny(host, " /") {
				d.problemf(sp, "%q is not a host or host:port", s)
			}
			p.Server = s
		}
		if s, _, ok := str("zone"); ok {
			p.Zone = s
		}
		if v, ap, ok := d.get(t, "allow_insecure"); ok {
			b, isBool := v.(bool)
			if !isBool {
				d.problemf(ap, "must be true or false, not %s", typeName(v))
			}
			p.AllowInsecure = b
		}
		p.KeyName, _, _ = str("key_name")
		alg, algPath, algSet := str("algorithm")
		p.Algorithm = "hmac-sha256"
		if algSet {
			alg = strings.TrimSuffix(strings.ToLower(alg), ".") // lego and BIND write the DNS name: "hmac-sha256."

			switch {
			case !slices.Contains(tsigAlgorithms, alg):
				d.problemf(algPath, "unknown TSIG algorithm %q (use hmac-sha256, hmac-sha384 or hmac-sha512)", alg)
			case alg == "hmac-md5" && !p.AllowInsecure:
				d.problemf(algPath, "hmac-md5 is weak; use hmac-sha256 (or set allow_insecure = true)")
			}
			p.Algorithm = alg
		}
		secret, secretPath, secretSet := str("secret")
		switch {
		case p.KeyName == "" && !p.AllowInsecure:
			d.problemf(t.p.key("key_name"), "required: the TSIG key's name (unsigned updates need allow_insecure = true)")
		case p.KeyName != "" && (!secretSet || secret == ""):
			d.problemf(secretPath, "required with key_name: the TSIG key's base64 secret")
		case secretSet:
			if ref, ok := certfleet.SecretRef(secret); ok {
				d.secretRef(secretPath, ref)
			} else if !validTSIGSecret(secret) {
				// Never quote the secret.
				d.problemf(secretPath, "not base64 (the value is a secret and not shown); copy it from the tsig-keygen output")
			}
		}
		p.Secret = secret
	case DNSProviderExec:
		if s, sp, ok := str("program"); ok && s != "" {
			p.Program, _ = d.abs(sp, s)
		} else {
			d.problemf(t.p.key("program"), "required: the hook program, called as PROGRAM present|cleanup FQDN VALUE")
		}
		p.Timeout = d.positiveDuration(t, "timeout")
	case DNSProviderWebhook, DNSProviderACMEDNS:
		if s, up, ok := str("url"); ok {
			u, err := url.Parse(s)
			switch {
			case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
				d.problemf(up, "%q is not an http:// or https:// URL", s)
			case u.User != nil:
				d.problemf(up, "the URL must not hold credentials; use username and password")
			}
			p.URL = s
		} else {
			d.problemf(t.p.key("url"), "required: the %s endpoint", typ)
		}
		if typ == DNSProviderACMEDNS {
			if list, paths, _, ok := d.strList(t, "allow_from"); ok {
				for i, s := range list {
					if _, _, err := net.ParseCIDR(s); err != nil {
						d.problemf(paths[i], "%q is not a network in CIDR form, as in \"192.0.2.0/24\"", s)
					}
				}
				p.AllowFrom = list
			}
			if s, cp, ok := str("credentials_file"); ok && s != "" {
				p.CredentialsFile, _ = d.abs(cp, s)
			}
			break
		}
		bearer, bearerPath, _ := str("bearer_token")
		if ref, ok := certfleet.SecretRef(bearer); ok {
			d.secretRef(bearerPath, ref)
		}
		p.BearerToken = bearer
		p.Username, _, _ = str("username")
		pass, passPath, _ := str("password")
		if ref, ok := certfleet.SecretRef(pass); ok {
			d.secretRef(passPath, ref)
		}
		p.Password = pass
		if p.BearerToken != "" && p.Username != "" {
			d.problemf(t.p.key("bearer_token"), "set either bearer_token or username and password, not both")
		}
		if pass != "" && p.Username == "" {
			d.problemf(passPath, "password without username")
		}
		if s, cp, ok := str("ca_file"); ok && s != "" {
			p.CAFile, _ = d.abs(cp, s)
		}
		p.Timeout = d.positiveDuration(t, "timeout")
	}
	return p, d.mark() == start
}

// providerTypeList names every provider type, for messages.
func providerTypeList() string {
	return "rfc2136, exec, webhook, acme-dns, " + strings.Join(LegoDNSProviderTypes(), ", ")
}

func (d *decoder) positiveDuration(t *table, key string) time.Duration {
	s, p, ok := d.str(t, key)
	if !ok || s == "" {
		return 0
	}
	v := d.duration(p, s)
	if v < 0 {
		d.problemf(p, "must be positive")
		return 0
	}
	return v
}

// caaIdentitiesOf decodes an account's caa_identities.
func (d *decoder) caaIdentitiesOf(t *table) []string {
	list, paths, _, ok := d.strList(t, "caa_identities")
	if !ok {
		return nil
	}
	var out []string
	for i, s := range list {
		s = strings.ToLower(s)
		if !caaIdentityRE.MatchString(s) {
			d.problemf(paths[i], "%q is not a CAA issuer domain name, as in \"letsencrypt.org\"", s)
			continue
		}
		out = append(out, s)
	}
	return out
}

// dnsProviderOf picks the provider of a dns-01 certificate: its own
// dns_provider, else [defaults]'s, else the only provider there is.
func (d *decoder) dnsProviderOf(t *table, cfg *Config, defs certDefaults, spec certfleet.CertificateSpec, crossOK bool) string {
	s, p, set := d.str(t, "dns_provider")
	if set && s != "" && spec.Challenge != certfleet.ChallengeDNS01 && crossOK {
		d.problemf(p, "dns_provider is only used with challenge = \"dns-01\"; this certificate uses %s", spec.Challenge)
		return ""
	}
	if spec.Challenge != certfleet.ChallengeDNS01 {
		return ""
	}
	name := s
	if !set {
		name = defs.dnsProvider
		p = path{"defaults", "dns_provider"}
	}
	if name == "" && len(cfg.DNS01.Providers) == 1 {
		for n := range cfg.DNS01.Providers {
			name = n
		}
	}
	names := slices.Sorted(maps.Keys(cfg.DNS01.Providers))
	if !crossOK {
		return name
	}
	switch {
	case name == "" && len(names) == 0 && len(d.dnsProviderBroken) > 0:
		// The provider is there but has problems, reported already: one
		// mistake, one error.
	case name == "" && len(names) == 0:
		d.problemf(t.p.key("challenge"), "dns-01 needs a DNS provider: define one in [dns01.providers.NAME] (type %s)", providerTypeList())
	case name == "":
		d.problemf(t.p.key("dns_provider"), "required with several DNS providers: one of %s (or set [defaults] dns_provider)", strings.Join(names, ", "))
	case !slices.Contains(names, name) && !d.dnsProviderBroken[name]:
		if len(names) == 0 {
			d.problemf(p, "unknown DNS provider %q: add a [dns01.providers.%s] table", name, quoteKey(name))
		} else {
			d.problemf(p, "unknown DNS provider %q (defined: %s)", name, strings.Join(names, ", "))
		}
	}
	return name
}

// dnsRoute is the DNS provider an identifier was given first.
type dnsRoute struct {
	provider string
	index    int
	line     int
}

// dnsRouteOK checks that a dns-01 certificate's identifiers are not given
// another provider by an earlier certificate: the solver picks the
// provider by identifier.
func (d *decoder) dnsRouteOK(routes map[string]dnsRoute, t *table, cert Certificate, index int) bool {
	if cert.Spec.Challenge != certfleet.ChallengeDNS01 {
		return true
	}
	for _, id := range cert.Spec.Identifiers {
		base := strings.TrimPrefix(id.Value, "*.")
		if prev, ok := routes[base]; ok && prev.provider != cert.DNSProvider {
			d.problemf(t.p.key("dns_provider"), "%q uses DNS provider %q here but %q in certificate[%d] at line %d; one name has one provider",
				base, cert.DNSProvider, prev.provider, prev.index, prev.line)
			return false
		}
	}
	for _, id := range cert.Spec.Identifiers {
		base := strings.TrimPrefix(id.Value, "*.")
		if _, ok := routes[base]; !ok {
			routes[base] = dnsRoute{cert.DNSProvider, index, d.lineOf(t.p)}
		}
	}
	return true
}

// DNSRoutes maps the identifiers of dns-01 certificates (a wildcard as its
// base name) to their DNS provider's name.
func (c *Config) DNSRoutes() map[string]string {
	out := make(map[string]string)
	for _, cert := range c.Certificates {
		if cert.Spec.Challenge != certfleet.ChallengeDNS01 {
			continue
		}
		for _, id := range cert.Spec.Identifiers {
			out[strings.TrimPrefix(id.Value, "*.")] = cert.DNSProvider
		}
	}
	return out
}

// dnsSecretKeys are the [dns01.providers] keys whose values are secrets.
var dnsSecretKeys = append([]string{"secret", "password", "bearer_token"}, legoSecretKeys()...)

// dnsSecretOnLine returns the secret key set on line (1-based) of data or
// the few lines before it (a multi-line value), or named by lastKey; "" if
// none.
func dnsSecretOnLine(data []byte, line int, lastKey string) string {
	for _, k := range dnsSecretKeys {
		if lastKey == k || strings.HasSuffix(lastKey, "."+k) {
			return k
		}
	}
	lines := strings.Split(string(data), "\n")
	if line < 1 {
		line = len(lines)
	}
	for l := max(line-3, 1); l <= line && l <= len(lines); l++ {
		key, _, ok := strings.Cut(strings.TrimSpace(lines[l-1]), "=")
		if !ok {
			continue
		}
		key = strings.Trim(strings.TrimSpace(key), `"'`)
		if slices.Contains(dnsSecretKeys, key) {
			return key
		}
	}
	return ""
}
