package daemontest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
)

// DNSNet is an authoritative DNS server that accepts TSIG-signed updates
// and also answers as the resolver (chasing CNAMEs, as a CA's recursive
// resolver does), and a Pebble whose validator asks it. Its zones are
// example.test and caa.test (whose CAA record names "other-ca.example").
type DNSNet struct {
	DNS    *dnstest.Server
	CA     *pebbleca.CA
	Secret string // the TSIG secret of key "certfleet", base64
}

// StartDNSNet starts a DNSNet, closed when the test ends.
func StartDNSNet(t testing.TB) *DNSNet {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	n := &DNSNet{Secret: base64.StdEncoding.EncodeToString(b)}
	var err error
	n.DNS, err = dnstest.Start("127.0.0.1", "0", map[string]string{"certfleet.": n.Secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.DNS.Close() })
	n.DNS.ChaseCNAME = true
	n.DNS.AddZone("example.test", "ns1.example.test")
	n.DNS.AddZone("caa.test", "ns1.example.test")
	n.DNS.Add("ns1.example.test. 60 IN A 127.0.0.1", `caa.test. 60 IN CAA 0 issue "other-ca.example"`)
	n.CA, err = pebbleca.Start(t.Context(), pebbleca.Config{ResolverAddr: n.DNS.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.CA.Close() })
	return n
}

// Config writes a config for the net's CA (WriteConfig, in a directory of
// its own) with an RFC 2136 provider "bind" using secret, and certs
// appended, and returns its path.
func (n *DNSNet) Config(t testing.TB, secret, certs string) string {
	t.Helper()
	return WriteConfig(t, t.TempDir(), n.CA, FreePort(t), fmt.Sprintf(`
[dns01]
nameservers = [%q]
authoritative_port = %s
propagation_timeout = "20s"
[dns01.providers.bind]
type = "rfc2136"
key_name = "certfleet"
secret = %q
%s`, n.DNS.Addr(), n.DNS.Port(), secret, certs))
}
