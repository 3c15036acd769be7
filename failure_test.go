package certfleet_test

import (
	"testing"

	"github.com/certfleet/certfleet"
)

// TestExplainFailure guards issue 15, finding 3: an attempt's error began
// with the order URL and buried the cause. Taken apart, the cause comes
// first: problem type, detail, the name, what to do; the URL on its own.
func TestExplainFailure(t *testing.T) {
	msg := `order https://ca.example/my-order/BUY4 is invalid: authorization for "www.example.org" (http-01) invalid: ` +
		`HTTP 403 urn:ietf:params:acme:error:unauthorized - 404 from http://www.example.org/.well-known/acme-challenge/x`
	got := certfleet.ExplainFailure(msg, "")
	want := certfleet.FailureCause{
		ProblemType: "urn:ietf:params:acme:error:unauthorized",
		Detail: `authorization for "www.example.org" (http-01) invalid: HTTP 403 urn:ietf:params:acme:error:unauthorized - ` +
			`404 from http://www.example.org/.well-known/acme-challenge/x`,
		Identifier: "www.example.org",
		Action:     "the CA could not verify control of the name: check the challenge reaches this host (certfleet check)",
		URL:        "https://ca.example/my-order/BUY4",
	}
	if got != want {
		t.Errorf("ExplainFailure =\n %+v\nwant\n %+v", got, want)
	}
	if got := certfleet.ExplainFailure("resume order https://ca.example/o/1: poll: boom", "urn:ietf:params:acme:error:serverInternal"); got.Detail != "boom" ||
		got.URL != "https://ca.example/o/1" || got.Action == "" || got.Identifier != "" {
		t.Errorf("resume: %+v", got)
	}
}
