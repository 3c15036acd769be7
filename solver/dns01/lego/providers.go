package lego

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/gandiv5"
	"github.com/go-acme/lego/v5/providers/dns/gcloud"
	"github.com/go-acme/lego/v5/providers/dns/hetzner"
	"github.com/go-acme/lego/v5/providers/dns/ovh"
	"github.com/go-acme/lego/v5/providers/dns/pdns"
	"github.com/go-acme/lego/v5/providers/dns/porkbun"
	"github.com/go-acme/lego/v5/providers/dns/route53"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsroute53 "github.com/aws/aws-sdk-go-v2/service/route53"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// Defaults of the settings every type takes.
const (
	// DefaultTimeout bounds one API request (the timeout key).
	DefaultTimeout = 30 * time.Second
	// DefaultTTL is the TTL of the records when the provider has no
	// higher minimum: short, so that a resolver that cached the record's
	// absence asks again soon.
	DefaultTTL = 120
)

// lego's providers wait for the API's own "change applied" signal with
// these where they have one (Hetzner's actions, Google's changes);
// propagation to the nameservers is dns01.Solver's to check.
const (
	apiWaitTimeout  = 2 * time.Minute
	apiPollInterval = 2 * time.Second
)

// builder makes a lego provider from a table's keys.
type builder func(k keys) (challenge.Provider, traits, error)

// builders are the types New knows, by config type name. Each fills lego's
// Config struct literally: lego's NewDefaultConfig reads environment
// variables, which certfleet never lets it do.
var builders = map[string]builder{
	"powerdns":     buildPowerDNS,
	"cloudflare":   buildCloudflare,
	"digitalocean": buildDigitalOcean,
	"hetzner":      buildHetzner,
	"ovh":          buildOVH,
	"gandi":        buildGandi,
	"porkbun":      buildPorkbun,
	"route53":      buildRoute53,
	"google":       buildGoogle,
}

// keys reads a table's settings.
type keys struct {
	m  map[string]string
	hc *http.Client
	// read, when not nil, records the keys looked at (tests compare them
	// with config.DNSProviderKeys).
	read map[string]bool
}

func (k keys) str(name string) string {
	if k.read != nil {
		k.read[name] = true
	}
	return k.m[name]
}

func (k keys) boolean(name string) bool {
	b, _ := strconv.ParseBool(k.str(name))
	return b
}

// ttl is the ttl key, or def.
func (k keys) ttl(def int) int {
	if n, err := strconv.Atoi(k.str("ttl")); err == nil && n > 0 {
		return n
	}
	return def
}

// httpClient is the client for API requests: Settings.HTTPClient, or one
// bounded by the timeout key.
func (k keys) httpClient() *http.Client {
	if k.hc != nil {
		return k.hc
	}
	timeout := DefaultTimeout
	if d, err := time.ParseDuration(k.str("timeout")); err == nil && d > 0 {
		timeout = d
	}
	return &http.Client{Timeout: timeout}
}

// buildPowerDNS: PowerDNS Authoritative's HTTP API (4.x, API v1). Its
// provider reads the zone's TXT set and writes it back with the value
// added or removed, by name: it needs no memory of earlier calls.
func buildPowerDNS(k keys) (challenge.Provider, traits, error) {
	u, err := url.Parse(k.str("api_url"))
	if err != nil {
		return nil, traits{}, fmt.Errorf("api_url: %w", err)
	}
	server := k.str("server_name")
	if server == "" {
		server = "localhost"
	}
	// APIVersion 1: PowerDNS 4 and later; 0 would make lego ask the
	// server at construction.
	p, err := pdns.NewDNSProviderConfig(&pdns.Config{
		APIKey: k.str("api_key"), Host: u, ServerName: server, APIVersion: 1,
		TTL: k.ttl(DefaultTTL), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		HTTPClient: k.httpClient(),
	})
	return p, traits{}, err
}

// buildCloudflare: Cloudflare's API v4. Its provider creates one record
// per value and keeps the record's id in memory for CleanUp (forgets).
func buildCloudflare(k keys) (challenge.Provider, traits, error) {
	p, err := cloudflare.NewDNSProviderConfig(&cloudflare.Config{
		AuthToken: k.str("api_token"), ZoneToken: k.str("zone_token"),
		AuthEmail: k.str("email"), AuthKey: k.str("api_key"), BaseURL: k.str("base_url"),
		TTL: k.ttl(120), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		HTTPClient: k.httpClient(),
	})
	return p, traits{forgets: true}, err
}

// buildDigitalOcean: DigitalOcean's API v2. One record per value, ids in
// memory (forgets).
func buildDigitalOcean(k keys) (challenge.Provider, traits, error) {
	p, err := digitalocean.NewDNSProviderConfig(&digitalocean.Config{
		AuthToken: k.str("api_token"), BaseURL: k.str("base_url"),
		TTL: k.ttl(DefaultTTL), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		HTTPClient: k.httpClient(),
	})
	return p, traits{forgets: true}, err
}

// buildHetzner: the Hetzner Cloud API's zones (the old DNS console API,
// which lego still offers with APIKey, is deprecated and not offered).
// Values are added to and removed from the RRset by value, and lego waits
// for Hetzner's action to finish.
func buildHetzner(k keys) (challenge.Provider, traits, error) {
	p, err := hetzner.NewDNSProviderConfig(&hetzner.Config{
		APIToken: k.str("api_token"),
		TTL:      k.ttl(DefaultTTL), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		HTTPClient: k.httpClient(),
	})
	return p, traits{}, err
}

// buildOVH: OVHcloud's API through its go-ovh client, with an application
// key, secret and consumer key, or an OAuth2 service account. One record
// per value, ids in memory (forgets).
func buildOVH(k keys) (challenge.Provider, traits, error) {
	c := &ovh.Config{
		APIEndpoint:    k.str("endpoint"),
		ApplicationKey: k.str("application_key"), ApplicationSecret: k.str("application_secret"), ConsumerKey: k.str("consumer_key"),
		TTL: k.ttl(DefaultTTL), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		HTTPClient: k.httpClient(),
	}
	if id := k.str("client_id"); id != "" {
		c.OAuth2Config = &ovh.OAuth2Config{ClientID: id, ClientSecret: k.str("client_secret")}
	}
	p, err := ovh.NewDNSProviderConfig(c)
	return p, traits{forgets: true}, err
}

// buildGandi: Gandi's LiveDNS API with a personal access token. Present
// adds the value to the name's TXT set; CleanUp deletes the whole set
// (wholeName) and only for names presented in this process (forgets).
func buildGandi(k keys) (challenge.Provider, traits, error) {
	p, err := gandiv5.NewDNSProviderConfig(&gandiv5.Config{
		PersonalAccessToken: k.str("personal_access_token"), BaseURL: k.str("base_url"),
		TTL: k.ttl(300), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		HTTPClient: k.httpClient(),
	})
	return p, traits{forgets: true, wholeName: true}, err
}

// buildPorkbun: Porkbun's API v3. One record per value, ids in memory
// (forgets).
func buildPorkbun(k keys) (challenge.Provider, traits, error) {
	p, err := porkbun.NewDNSProviderConfig(&porkbun.Config{
		APIKey: k.str("api_key"), SecretAPIKey: k.str("secret_api_key"),
		TTL: k.ttl(600), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		HTTPClient: k.httpClient(),
	})
	return p, traits{forgets: true}, err
}

// buildRoute53: Amazon Route 53 with a static IAM key. The AWS client is
// built here, not by lego: lego's would load the AWS SDK's default
// configuration (environment, ~/.aws, instance metadata). lego reads the
// name's TXT set and writes it back with UPSERT, by value; it does not wait
// for Route 53's INSYNC (WaitForRecordSetsChanged off): certfleet checks
// the nameservers themselves.
func buildRoute53(k keys) (challenge.Provider, traits, error) {
	region := k.str("region")
	if region == "" {
		region = "us-east-1"
	}
	client := awsroute53.New(awsroute53.Options{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(k.str("access_key_id"), k.str("secret_access_key"), k.str("session_token")),
		HTTPClient:  k.httpClient(),
	}, func(o *awsroute53.Options) {
		if e := k.str("endpoint"); e != "" {
			o.BaseEndpoint = aws.String(e)
		}
	})
	p, err := route53.NewDNSProviderConfig(&route53.Config{
		HostedZoneID: k.str("hosted_zone_id"), PrivateZone: k.boolean("private_zone"),
		TTL: k.ttl(DefaultTTL), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		Client: client,
	})
	return p, traits{}, err
}

// googleDNSScope is the OAuth2 scope of Cloud DNS read/write, as lego asks
// for it.
const googleDNSScope = "https://www.googleapis.com/auth/ndev.clouddns.readwrite"

// buildGoogle: Google Cloud DNS with a service account key (a file, or the
// JSON itself as a secret). The OAuth2 client is built here from the key:
// lego's other ways read GCE_* variables or Application Default
// Credentials. lego reads the name's TXT set and writes it back with the
// value added; its cleanup deletes the whole set (wholeName).
func buildGoogle(k keys) (challenge.Provider, traits, error) {
	key := []byte(k.str("service_account_json"))
	if f := k.str("service_account_file"); f != "" {
		var err error
		if key, err = os.ReadFile(f); err != nil {
			return nil, traits{}, fmt.Errorf("read service_account_file: %w", err)
		}
	}
	var sa struct {
		ProjectID string `json:"project_id"`
	}
	if err := json.Unmarshal(key, &sa); err != nil {
		return nil, traits{}, errors.New("the service account key is not JSON (download a JSON key for the service account)")
	}
	project := k.str("project")
	if project == "" {
		project = sa.ProjectID
	}
	if project == "" {
		return nil, traits{}, errors.New("no project: set project, or use a key with project_id")
	}
	conf, err := google.JWTConfigFromJSON(key, googleDNSScope)
	if err != nil {
		// The error would quote nothing secret, but say it plainly.
		return nil, traits{}, errors.New("the service account key is not a usable service_account JSON key")
	}
	// The token requests go through the same client as the API's.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, k.httpClient())
	p, err := gcloud.NewDNSProviderConfig(&gcloud.Config{
		Project: project, ZoneID: k.str("managed_zone"), AllowPrivateZone: k.boolean("private_zone"),
		TTL: k.ttl(DefaultTTL), PropagationTimeout: apiWaitTimeout, PollingInterval: apiPollInterval,
		HTTPClient: conf.Client(ctx),
	})
	return p, traits{wholeName: true}, err
}
