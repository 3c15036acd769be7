package lego

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/pdns"
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
	"powerdns": buildPowerDNS,
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
