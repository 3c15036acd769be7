package lego_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// awsSigned checks that a request carries an AWS Signature Version 4 for
// the access key, region us-east-1 and service route53.
func awsSigned(r *http.Request, _ []byte) error {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(auth, "/us-east-1/route53/aws4_request") ||
		!strings.Contains(auth, "Signature=") {
		return fmt.Errorf("Authorization %q is not a SigV4 signature of AKIDTEST for route53 in us-east-1", auth)
	}
	return nil
}

// xmlHas checks that the request body is XML holding each of the elements
// given as "Name=value" (the first element of that name).
func xmlHas(pairs ...string) func(r *http.Request, body []byte) error {
	return func(r *http.Request, body []byte) error {
		if err := awsSigned(r, body); err != nil {
			return err
		}
		found := map[string][]string{}
		dec := xml.NewDecoder(bytes.NewReader(body))
		var stack []string
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch tok := tok.(type) {
			case xml.StartElement:
				stack = append(stack, tok.Name.Local)
			case xml.EndElement:
				stack = stack[:len(stack)-1]
			case xml.CharData:
				if len(stack) > 0 && len(bytes.TrimSpace(tok)) > 0 {
					found[stack[len(stack)-1]] = append(found[stack[len(stack)-1]], string(tok))
				}
			}
		}
		for _, p := range pairs {
			name, value, _ := strings.Cut(p, "=")
			if !containsString(found[name], value) {
				return fmt.Errorf("body has %s = %q, want %q", name, found[name], value)
			}
		}
		return nil
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

const route53Zones = `<?xml version="1.0" encoding="UTF-8"?>
<ListHostedZonesByNameResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
<HostedZones><HostedZone><Id>/hostedzone/Z0TEST</Id><Name>example.com.</Name><CallerReference>x</CallerReference>
<Config><PrivateZone>false</PrivateZone></Config><ResourceRecordSetCount>3</ResourceRecordSetCount></HostedZone></HostedZones>
<DNSName>example.com</DNSName><IsTruncated>false</IsTruncated><MaxItems>100</MaxItems>
</ListHostedZonesByNameResponse>`

func route53RRSets(values ...string) string {
	rrs := ""
	if len(values) > 0 {
		rrs = `<ResourceRecordSet><Name>_acme-challenge.example.com.</Name><Type>TXT</Type><TTL>120</TTL><ResourceRecords>`
		for _, v := range values {
			rrs += `<ResourceRecord><Value>"` + v + `"</Value></ResourceRecord>`
		}
		rrs += `</ResourceRecords></ResourceRecordSet>`
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
<ResourceRecordSets>` + rrs + `</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>100</MaxItems>
</ListResourceRecordSetsResponse>`
}

const route53Change = `<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
<ChangeInfo><Id>/change/C0TEST</Id><Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo>
</ChangeResourceRecordSetsResponse>`

// TestRoute53: the AWS SDK client built by the adapter, its endpoint set
// to the local server: zone lookup by name and the name's TXT set (the
// lists), then UPSERT with the value added; at cleanup DELETE of the set
// it was the only value of. Every request SigV4-signed.
func TestRoute53(t *testing.T) {
	rec := testRecord(testKA)
	a := newAPIServer(t,
		exchange{method: "GET", path: "/2013-04-01/hostedzonesbyname?dnsname=example.com", check: awsSigned, reply: route53Zones},
		exchange{method: "GET", path: "/2013-04-01/hostedzone/Z0TEST/rrset?name=_acme-challenge.example.com.&type=TXT", check: awsSigned, reply: route53RRSets()},
		exchange{method: "POST", path: "/2013-04-01/hostedzone/Z0TEST/rrset", body: "xml",
			check: xmlHas("Action=UPSERT", "Name=_acme-challenge.example.com.", "Type=TXT", "TTL=120", `Value="`+rec.Value+`"`), reply: route53Change},
		exchange{method: "GET", path: "/2013-04-01/hostedzonesbyname?dnsname=example.com", check: awsSigned, reply: route53Zones},
		exchange{method: "GET", path: "/2013-04-01/hostedzone/Z0TEST/rrset?name=_acme-challenge.example.com.&type=TXT", check: awsSigned, reply: route53RRSets(rec.Value)},
		exchange{method: "POST", path: "/2013-04-01/hostedzone/Z0TEST/rrset", body: "xml",
			check: xmlHas("Action=DELETE", "Name=_acme-challenge.example.com.", `Value="`+rec.Value+`"`), reply: route53Change},
	)
	p := mustProvider(t, "route53", map[string]string{"access_key_id": "AKIDTEST", "secret_access_key": "aws-secret",
		"endpoint": a.URL()}, nil)
	presentAndCleanUp(t, p, rec)
}

// googleKey returns a service account JSON key with a fresh RSA key.
func googleKey(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "cf-project", "private_key_id": "kid1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "certfleet@cf-project.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": "https://oauth2.googleapis.com/token",
	})
	return string(b)
}

// googleTokenRequest checks the OAuth2 JWT-bearer grant (RFC 7523) of the
// service account.
func googleTokenRequest(r *http.Request, body []byte) error {
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return err
	}
	if q.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || strings.Count(q.Get("assertion"), ".") != 2 {
		return fmt.Errorf("not a JWT-bearer grant: %v", q)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(q.Get("assertion"), ".")[1])
	if err != nil {
		return err
	}
	var claims struct{ Iss, Scope, Aud string }
	json.Unmarshal(payload, &claims)
	if claims.Iss != "certfleet@cf-project.iam.gserviceaccount.com" || claims.Scope != "https://www.googleapis.com/auth/ndev.clouddns.readwrite" {
		return fmt.Errorf("JWT claims %+v", claims)
	}
	return nil
}

// TestGoogleCloudDNS: the service account's token, then the managed zone
// by DNS name and the name's TXT set (the lists), a change adding the
// value; at cleanup the lists again and a change deleting the set. lego
// offers no endpoint setting for Cloud DNS: the client is redirected and
// the hosts checked (oauth2.googleapis.com, dns.googleapis.com).
func TestGoogleCloudDNS(t *testing.T) {
	rec := testRecord(testKA)
	auth := map[string]string{"Authorization": "Bearer ya29.test-token"}
	api := "dns.googleapis.com"
	base := "/dns/v1/projects/cf-project/managedZones"
	zones := exchange{method: "GET", host: api, path: base + "?alt=json&dnsName=example.com.&prettyPrint=false", header: auth,
		reply: `{"managedZones":[{"name":"example-zone","dnsName":"example.com.","visibility":"public"}]}`}
	rrsets := func(reply string) exchange {
		return exchange{method: "GET", host: api, path: base + "/example-zone/rrsets?alt=json&name=_acme-challenge.example.com.&prettyPrint=false&type=TXT",
			header: auth, reply: reply}
	}
	set := fmt.Sprintf(`{"name":"_acme-challenge.example.com.","type":"TXT","ttl":120,"rrdatas":["%s"]}`, rec.Value)
	a := newAPIServer(t,
		exchange{method: "POST", host: "oauth2.googleapis.com", path: "/token", body: "form", check: googleTokenRequest,
			reply: `{"access_token":"ya29.test-token","token_type":"Bearer","expires_in":3600}`},
		zones,
		rrsets(`{"rrsets":[]}`),
		exchange{method: "POST", host: api, path: base + "/example-zone/changes?alt=json&prettyPrint=false", header: auth,
			body: `{"additions":[` + set + `]}`, reply: `{"id":"1","status":"done"}`},
		zones,
		rrsets(`{"rrsets":[`+set+`]}`),
		exchange{method: "POST", host: api, path: base + "/example-zone/changes?alt=json&prettyPrint=false", header: auth,
			body: `{"deletions":[` + set + `]}`, reply: `{"id":"2","status":"done"}`},
	)
	p := mustProvider(t, "google", map[string]string{"service_account_json": googleKey(t)}, a.redirect())
	presentAndCleanUp(t, p, rec)
}
