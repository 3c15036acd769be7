package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestBudStaplingPost is issue 17's finding: Bud's stapling POST got 405.
// The requests are written byte for byte as Bud's http pool writes them
// (bud src/http-pool.c: the responder URL escaped into the %s of the
// configured url, a JSON body, and a CRLF after the body beyond
// Content-Length), on one kept-alive connection as Bud pools it: each gets
// a JSON answer that is not 200 (Bud staples nothing, and logs no error),
// and the connection stays usable. No request goes to the responder named
// in the body.
func TestBudStaplingPost(t *testing.T) {
	e := newEnv(t, 0)
	secret := e.token(nil, true, certfleet.PermReadCerts)

	// A responder that must never be contacted.
	contacted := make(chan struct{}, 1)
	responder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer responder.Close()
	go func() {
		if c, err := responder.Accept(); err == nil {
			contacted <- struct{}{}
			c.Close()
		}
	}()
	ocspURL := "http://" + responder.Addr().String() + "/"

	u, _ := url.Parse(e.urlAPI.URL)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	path := "/u/" + secret + "/v1/bud/ocsp/" + budEscape(ocspURL)
	body := `{"url":"` + ocspURL + `","ocsp":"MEMwQTA/MD0wOzAJBgUrDgMCGgUABBQ="}`
	reqs := []string{
		"POST " + path + " HTTP/1.1\r\nContent-Type: application/json\r\nHost: " + u.Host + "\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body + "\r\n",
		"POST " + path + " HTTP/1.1\r\nContent-Type: application/json\r\nHost: " + u.Host + "\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body + "\r\n",
		"GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n",
	}
	for i, raw := range reqs {
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i+1, strings.Fields(raw)[0], err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.TrimSpace(string(got)) != "{}" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("request %d (%s): %d %s %q; want a JSON 404 {} (Bud: no staple)", i+1, strings.Fields(raw)[0],
				resp.StatusCode, resp.Header.Get("Content-Type"), got)
		}
		if resp.Close {
			t.Fatalf("request %d: the server closes the connection Bud pools", i+1)
		}
	}
	select {
	case <-contacted:
		t.Fatal("certfleet contacted the OCSP responder named in Bud's POST")
	case <-time.After(200 * time.Millisecond):
	}
}

// budEscape escapes an argument into a url the way Bud does
// (bud_http_request_escape_url: reserved characters as %xx, lower case).
func budEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if strings.IndexByte("!#$&'()*+,/:;=?@[]", c) >= 0 {
			fmt.Fprintf(&b, "%%%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
