package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/certfleet/certfleet"
)

// DNS provider types written through lego's provider packages (package
// solver/dns01/lego). Their keys are listed in DNSProviderKeys; the values
// land in DNSProvider.Keys.
const (
	DNSProviderPowerDNS     = "powerdns"
	DNSProviderCloudflare   = "cloudflare"
	DNSProviderDigitalOcean = "digitalocean"
	DNSProviderHetzner      = "hetzner"
	DNSProviderOVH          = "ovh"
	DNSProviderGandi        = "gandi"
	DNSProviderPorkbun      = "porkbun"
	DNSProviderGoogle       = "google"
	DNSProviderRoute53      = "route53"
)

// KeyKind is what a provider key holds.
type KeyKind int

// Kinds of provider keys.
const (
	KeyText     KeyKind = iota // a string
	KeySecret                  // a string, or "store:NAME"; never shown
	KeyURL                     // an http:// or https:// URL without credentials
	KeyFile                    // a path, made absolute against the file's directory
	KeyInt                     // a non-negative integer
	KeyBool                    // true or false
	KeyDuration                // a positive duration, as "30s"
)

// DNSProviderKey is one key of a [dns01.providers.NAME] table whose type is
// written through lego.
type DNSProviderKey struct {
	Name     string
	Kind     KeyKind
	Required bool
	// Doc says what the key is, for docs/dns01.md and error messages.
	Doc string
}

// legoType is the schema of one provider type written through lego.
type legoType struct {
	keys []DNSProviderKey
	// either lists alternative sets of credential keys: exactly one set
	// must be given, in full.
	either [][]string
	// minTTL is the smallest ttl the provider's API accepts.
	minTTL int
}

// Keys every type written through lego takes.
var legoCommonKeys = []DNSProviderKey{
	{Name: "ttl", Kind: KeyInt, Doc: "TTL of the TXT records, seconds (the provider's minimum by default)"},
	{Name: "timeout", Kind: KeyDuration, Doc: "bound on one API request (default 30s)"},
}

// legoTypes are the schemas, by type. solver/dns01/lego builds each
// provider's lego Config from exactly these keys (its tests check that).
var legoTypes = map[string]legoType{

	DNSProviderPowerDNS: {keys: []DNSProviderKey{
		{Name: "api_url", Kind: KeyURL, Required: true, Doc: "the webserver/API base URL, as \"http://127.0.0.1:8081\""},
		{Name: "api_key", Kind: KeySecret, Required: true, Doc: "the API key (api-key in pdns.conf)"},
		{Name: "server_name", Kind: KeyText, Doc: "the server id in API paths (default \"localhost\")"},
	}},
	DNSProviderCloudflare: {minTTL: 120, keys: []DNSProviderKey{
		{Name: "api_token", Kind: KeySecret, Doc: "API token with Zone:DNS:Edit (and Zone:Zone:Read unless zone_token is set)"},
		{Name: "zone_token", Kind: KeySecret, Doc: "optional second token with Zone:Zone:Read, used to look zones up"},
		{Name: "email", Kind: KeyText, Doc: "account e-mail, with api_key (the global API key; prefer api_token)"},
		{Name: "api_key", Kind: KeySecret, Doc: "global API key, with email"},
		{Name: "base_url", Kind: KeyURL, Doc: "API base URL (default https://api.cloudflare.com/client/v4)"},
	}, either: [][]string{{"api_token"}, {"email", "api_key"}}},
	DNSProviderDigitalOcean: {minTTL: 30, keys: []DNSProviderKey{
		{Name: "api_token", Kind: KeySecret, Required: true, Doc: "personal access token with domain read/write scope"},
		{Name: "base_url", Kind: KeyURL, Doc: "API base URL (default https://api.digitalocean.com)"},
	}},
	DNSProviderHetzner: {minTTL: 60, keys: []DNSProviderKey{
		{Name: "api_token", Kind: KeySecret, Required: true, Doc: "Hetzner Cloud API token (read & write) of the project holding the zone"},
	}},
	DNSProviderOVH: {keys: []DNSProviderKey{
		{Name: "endpoint", Kind: KeyText, Required: true, Doc: "\"ovh-eu\", \"ovh-ca\", \"ovh-us\", \"kimsufi-eu\", ... or the API URL"},
		{Name: "application_key", Kind: KeyText, Doc: "application key, with application_secret and consumer_key"},
		{Name: "application_secret", Kind: KeySecret, Doc: "application secret"},
		{Name: "consumer_key", Kind: KeySecret, Doc: "consumer key"},
		{Name: "client_id", Kind: KeyText, Doc: "OAuth2 service account id, with client_secret"},
		{Name: "client_secret", Kind: KeySecret, Doc: "OAuth2 service account secret"},
	}, either: [][]string{{"application_key", "application_secret", "consumer_key"}, {"client_id", "client_secret"}}},
	DNSProviderGandi: {minTTL: 300, keys: []DNSProviderKey{
		{Name: "personal_access_token", Kind: KeySecret, Required: true, Doc: "personal access token with the Manage domain technical configurations permission"},
		{Name: "base_url", Kind: KeyURL, Doc: "LiveDNS API base URL (default https://api.gandi.net/v5/livedns)"},
	}},
	DNSProviderPorkbun: {minTTL: 600, keys: []DNSProviderKey{
		{Name: "api_key", Kind: KeySecret, Required: true, Doc: "API key (pk1_...) of a domain with API access on"},
		{Name: "secret_api_key", Kind: KeySecret, Required: true, Doc: "secret API key (sk1_...)"},
	}},
	DNSProviderRoute53: {keys: []DNSProviderKey{
		{Name: "access_key_id", Kind: KeyText, Required: true, Doc: "IAM access key id"},
		{Name: "secret_access_key", Kind: KeySecret, Required: true, Doc: "IAM secret access key"},
		{Name: "session_token", Kind: KeySecret, Doc: "session token of temporary credentials"},
		{Name: "region", Kind: KeyText, Doc: "AWS region for signing (default us-east-1)"},
		{Name: "hosted_zone_id", Kind: KeyText, Doc: "hosted zone id; default: looked up by zone name"},
		{Name: "private_zone", Kind: KeyBool, Doc: "look the zone up among private hosted zones"},
		{Name: "endpoint", Kind: KeyURL, Doc: "Route 53 API endpoint (default AWS's)"},
	}},
	DNSProviderGoogle: {keys: []DNSProviderKey{
		{Name: "project", Kind: KeyText, Doc: "project id (default: project_id of the service account key)"},
		{Name: "service_account_file", Kind: KeyFile, Doc: "service account JSON key file"},
		{Name: "service_account_json", Kind: KeySecret, Doc: "the service account JSON key itself (store:NAME)"},
		{Name: "managed_zone", Kind: KeyText, Doc: "managed zone name; spares the dns.managedZones.list permission"},
		{Name: "private_zone", Kind: KeyBool, Doc: "allow private managed zones"},
	}, either: [][]string{{"service_account_file"}, {"service_account_json"}}},
}

// LegoDNSProviderTypes returns the provider types written through lego,
// sorted.
func LegoDNSProviderTypes() []string {
	out := make([]string, 0, len(legoTypes))
	for t := range legoTypes {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// IsLegoDNSProvider reports whether typ is written through lego (package
// solver/dns01/lego), its settings in DNSProvider.Keys.
func IsLegoDNSProvider(typ string) bool {
	_, ok := legoTypes[typ]
	return ok
}

// DNSProviderKeys returns the keys of a provider type written through
// lego, its own first and then ttl and timeout; nil for other types.
func DNSProviderKeys(typ string) []DNSProviderKey {
	lt, ok := legoTypes[typ]
	if !ok {
		return nil
	}
	return append(slices.Clone(lt.keys), legoCommonKeys...)
}

// DNSProviderCredentialSets returns the alternative credential key sets of
// a type written through lego (exactly one must be given), or nil when its
// required keys say it all.
func DNSProviderCredentialSets(typ string) [][]string {
	return slices.Clone(legoTypes[typ].either)
}

// legoSecretKeys are the key names that hold secrets in some lego type.
func legoSecretKeys() []string {
	var out []string
	for _, lt := range legoTypes {
		for _, k := range lt.keys {
			if k.Kind == KeySecret && !slices.Contains(out, k.Name) {
				out = append(out, k.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// legoProvider decodes the keys of a [dns01.providers.NAME] table whose
// type is written through lego.
func (d *decoder) legoProvider(t *table, p *DNSProvider) {
	lt := legoTypes[p.Type]
	keys := DNSProviderKeys(p.Type)
	names := []string{"type"}
	for _, k := range keys {
		names = append(names, k.Name)
	}
	defer d.unknown(t, names)
	p.Keys = map[string]string{}
	for _, k := range keys {
		v, kp, ok := d.get(t, k.Name)
		if !ok {
			if k.Required {
				d.problemf(kp, "required: %s", k.Doc)
			}
			continue
		}
		switch k.Kind {
		case KeyInt:
			n, isInt := v.(int64)
			if !isInt || n < 0 {
				d.problemf(kp, "must be a non-negative integer, not %s", typeName(v))
				continue
			}
			if k.Name == "ttl" && lt.minTTL > 0 && n < int64(lt.minTTL) {
				d.problemf(kp, "%d is below %s's minimum TTL of %d", n, p.Type, lt.minTTL)
				continue
			}
			p.Keys[k.Name] = strconv.FormatInt(n, 10)
			continue
		case KeyBool:
			b, isBool := v.(bool)
			if !isBool {
				d.problemf(kp, "must be true or false, not %s", typeName(v))
				continue
			}
			p.Keys[k.Name] = strconv.FormatBool(b)
			continue
		}
		s, isStr := v.(string)
		if !isStr {
			d.problemf(kp, "must be a string, not %s", typeName(v))
			continue
		}
		if s == "" {
			if k.Required {
				d.problemf(kp, "required: %s", k.Doc)
			}
			continue
		}
		switch k.Kind {
		case KeySecret:
			if ref, ok := certfleet.SecretRef(s); ok {
				d.secretRef(kp, ref)
			}
		case KeyURL:
			u, err := url.Parse(s)
			switch {
			case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
				d.problemf(kp, "%q is not an http:// or https:// URL", s)
				continue
			case u.User != nil:
				d.problemf(kp, "the URL must not hold credentials")
				continue
			}
		case KeyFile:
			abs, ok := d.abs(kp, s)
			if !ok {
				continue
			}
			s = abs
		case KeyDuration:
			v, err := ParseDuration(s)
			if err != nil || v <= 0 {
				d.problemf(kp, "%q is not a positive duration, as in \"30s\"", s)
				continue
			}
		}
		p.Keys[k.Name] = s
	}
	d.legoCredentials(t, p, lt)
}

// legoCredentials checks that exactly one of a type's alternative
// credential sets is given, in full.
func (d *decoder) legoCredentials(t *table, p *DNSProvider, lt legoType) {
	if len(lt.either) == 0 {
		return
	}
	var full, partial [][]string
	for _, set := range lt.either {
		n := 0
		for _, k := range set {
			if _, ok := t.m[k]; ok {
				n++
			}
		}
		switch {
		case n == len(set):
			full = append(full, set)
		case n > 0:
			partial = append(partial, set)
		}
	}
	alternatives := make([]string, len(lt.either))
	for i, set := range lt.either {
		alternatives[i] = strings.Join(set, " + ")
	}
	switch {
	case len(full) > 1:
		d.problemf(t.p.key(full[1][0]), "set only one of: %s", strings.Join(alternatives, ", or "))
	case len(partial) > 0 && len(full) == 0:
		for _, k := range partial[0] {
			if _, ok := t.m[k]; !ok {
				d.problemf(t.p.key(k), "required with %s", strings.Join(slices.DeleteFunc(slices.Clone(partial[0]), func(s string) bool { return s == k }), " and "))
				return
			}
		}
	case len(full) == 0:
		d.problemf(t.p.key(lt.either[0][0]), "%s needs credentials: set %s", p.Type, strings.Join(alternatives, ", or "))
	}
	if p.Type == DNSProviderCloudflare && p.Keys["zone_token"] != "" && p.Keys["api_token"] == "" {
		d.problemf(t.p.key("zone_token"), "zone_token goes with api_token, not with email and api_key")
	}
}

// legoString describes a provider written through lego without secrets.
func legoString(p DNSProvider) string {
	for _, k := range []string{"api_url", "base_url", "endpoint", "project", "subscription_id"} {
		if v := p.Keys[k]; v != "" {
			return fmt.Sprintf(" %s=%s", k, v)
		}
	}
	return ""
}
