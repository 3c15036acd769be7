package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// shopNames are the identifiers of the demo's certificate "shop", the one
// of issue 12's first finding.
var shopNames = []string{"shop.certfleet.test", "www.shop.certfleet.test", "api.shop.certfleet.test", "127.0.0.1"}

// openShop opens a daemon whose config declares the certificate "shop"
// (four identifiers, one an IP address), issues it through Pebble, and
// starts the API (bearer tokens and URL credentials) with the dashboard.
func openShop(t *testing.T, extra string) (d *daemon.Daemon, api, urlAPI string) {
	t.Helper()
	ca, port := daemontest.StartCA(t)
	path := daemontest.WriteConfig(t, t.TempDir(), ca, port, `[api]
listen = "127.0.0.1:0"
url_listen = "127.0.0.1:0"
`+extra+`
[[certificate]]
name = "shop"
identifiers = ["`+strings.Join(shopNames, `", "`)+`"]
`)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err = daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 1 {
		t.Fatalf("issue shop: %+v, %v", rep.Results, err)
	}
	a, u, err := d.StartAPI(t.Context(), daemon.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d, "http://" + a, "http://" + u
}

// newToken makes a token of d's store and returns its secret.
func newToken(t *testing.T, d *daemon.Daemon, names []string, url bool, perms ...certfleet.Permission) string {
	t.Helper()
	ts, err := daemon.APIStore(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := daemon.CreateToken(t.Context(), ts, "test", names, perms, url)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

type answer struct {
	status int
	body   string
}

func call(t *testing.T, method, u, secret string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

// short is an answer's body for a message: the start of it, and never a
// key.
func short(a answer) string {
	s := a.body
	if i := strings.Index(s, "-----BEGIN"); i >= 0 {
		s = s[:i] + "[PEM…]"
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// TestReadRuleMatrix is issue 12's first finding and the rule that fixes
// it: a token reads a certificate, and above all anything that carries its
// key, only if it covers every identifier of the certificate. For every
// read endpoint, with a bearer token and with a URL credential, a token
// covering all of shop's names reads it; one covering some of them (the
// finding: "*.shop.certfleet.test", which covers www and api but neither
// the apex nor 127.0.0.1) gets exactly the answer of a token covering none
// (same status, same body: nothing says the certificate exists); so do the
// agent's sync and the dashboard.
func TestReadRuleMatrix(t *testing.T) {
	d, api, urlAPI := openShop(t, "")
	readKeys := []certfleet.Permission{certfleet.PermReadKeys}
	all := []string{"*.shop.certfleet.test", "shop.certfleet.test", "127.0.0.1"}
	some := []string{"*.shop.certfleet.test"}
	none := []string{"*.other.test"}
	const host = "www.shop.certfleet.test"
	report := []byte(`{"name": "` + host + `", "serial": "01"}`)
	reads := []struct {
		method, path string
		body         []byte
		url          bool // served to URL credentials too
		want         int  // for a token covering all
	}{
		{"GET", "/v1/names/" + host + "/cert", nil, true, 200},
		{"GET", "/v1/names/" + host + "/chain", nil, true, 200},
		{"GET", "/v1/names/" + host + "/fullchain", nil, true, 200},
		{"GET", "/v1/names/" + host + "/privkey", nil, true, 200},
		{"GET", "/v1/names/" + host + "/bud", nil, true, 200},
		{"GET", "/v1/tls/get_certificate?server_name=" + host, nil, true, 200},
		{"GET", "/v1/names/" + host + "/status", nil, false, 200},
		{"GET", "/v1/certificates/shop", nil, false, 200},
		{"POST", "/v1/agents/lb1/report", report, false, 204},
		// The certificate is healthy: an authorized retry is told why
		// nothing is ordered (409; issue 15, finding 6).
		{"POST", "/v1/names/" + host + "/retry", nil, false, 409},
	}
	for _, cred := range []struct {
		name string
		url  bool
	}{{"header token", false}, {"URL credential", true}} {
		perms := readKeys
		if !cred.url {
			perms = append(perms, certfleet.PermRequestNames)
		}
		secrets := map[string]string{
			"all":  newToken(t, d, all, cred.url, perms...),
			"some": newToken(t, d, some, cred.url, perms...),
			"none": newToken(t, d, none, cred.url, perms...),
		}
		for _, rd := range reads {
			if cred.url && !rd.url {
				continue
			}
			ask := func(which string) answer {
				if cred.url {
					return call(t, rd.method, urlAPI+"/u/"+secrets[which]+rd.path, "", rd.body)
				}
				return call(t, rd.method, api+rd.path, secrets[which], rd.body)
			}
			got := map[string]answer{"all": ask("all"), "some": ask("some"), "none": ask("none")}
			where := cred.name + " " + rd.method + " " + rd.path
			if got["all"].status != rd.want {
				t.Errorf("%s, covering all names: %d, want %d: %s", where, got["all"].status, rd.want, short(got["all"]))
			}
			if got["none"].status < 400 {
				t.Errorf("%s, covering none: %d: %s", where, got["none"].status, short(got["none"]))
			}
			if got["some"] != got["none"] {
				t.Errorf("%s, covering some names (not shop.certfleet.test, not 127.0.0.1): %d %s\nwant the answer to a token covering none: %d %s",
					where, got["some"].status, short(got["some"]), got["none"].status, short(got["none"]))
			}
			if strings.Contains(got["some"].body, "PRIVATE KEY") {
				t.Errorf("%s: a token covering some names got the private key", where)
			}
		}
		if cred.url {
			continue
		}
		// The listing: shop for the token covering all, nothing for the
		// others.
		for which, want := range map[string]int{"all": 1, "some": 0, "none": 0} {
			a := call(t, "GET", api+"/v1/certificates", secrets[which], nil)
			var list httpapi.CertificateList
			if err := json.Unmarshal([]byte(a.body), &list); err != nil || len(list.Certificates) != want {
				t.Errorf("GET /v1/certificates covering %s: %d certificates, want %d: %s", which, len(list.Certificates), want, a.body)
			}
		}
	}

	// The agent's sync, with a read-keys token covering some names: no
	// key on the host, an error; with one covering all: the files.
	for which, names := range map[string][]string{"all": all, "some": some} {
		dir := t.TempDir()
		files := agent.Files{Key: filepath.Join(dir, "key.pem"), Fullchain: filepath.Join(dir, "fullchain.pem")}
		a, err := agent.New(agent.Config{Name: "lb1", Client: &httpapi.Client{BaseURL: api, Token: newToken(t, d, names, false, certfleet.PermReadKeys)},
			Certificates: []agent.Certificate{{Name: host, Files: files}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		err = a.Once(ctx)
		cancel()
		_, statErr := os.Stat(files.Key)
		switch which {
		case "all":
			if err != nil || statErr != nil {
				t.Errorf("agent sync covering all names: %v; key file: %v", err, statErr)
			}
		case "some":
			if err == nil || statErr == nil {
				t.Errorf("agent sync covering some names: error %v, key file written: %v; want an error and no key", err, statErr == nil)
			}
		}
	}

	// The dashboard: the list and the certificate's page.
	for which, names := range map[string][]string{"all": all, "some": some, "none": none} {
		c := dashboardLogin(t, api, newToken(t, d, names, false, certfleet.PermReadCerts))
		list := get(t, c, api+"/dashboard/")
		page := get(t, c, api+"/dashboard/cert/shop")
		if which == "all" {
			if !strings.Contains(list.body, "www.shop.certfleet.test") || page.status != 200 {
				t.Errorf("dashboard covering all names: list without shop, or its page %d", page.status)
			}
			continue
		}
		if strings.Contains(list.body, "shop.certfleet.test") || page.status != 404 {
			t.Errorf("dashboard covering %s names: list shows shop %v, its page %d (want 404)", which, strings.Contains(list.body, "shop.certfleet.test"), page.status)
		}
	}
}

// dashboardLogin logs in to the dashboard with secret.
func dashboardLogin(t *testing.T, api, secret string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm(api+"/dashboard/login", url.Values{"token": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/dashboard/" {
		t.Fatalf("dashboard login: %s at %s", resp.Status, resp.Request.URL)
	}
	return c
}

func get(t *testing.T, c *http.Client, u string) answer {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}
