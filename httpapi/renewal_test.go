package httpapi_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/httpapi"
)

// TestPutNameRenewAfter: renew_after (renewal by age, issue 16) is set
// over the API as in the config file: PUT takes it, the name's status
// and the certificate's document show it, and the scheduler's spec has
// it. A value that is not a duration is refused naming the field.
func TestPutNameRenewAfter(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	const name = "age.renew.test"
	st, err := e.admin.PutName(ctx, name, &httpapi.NameRequest{RenewAfter: "60d", RenewBefore: "20d"})
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	if st.RenewAfter != "60d" || st.RenewBefore != "20d" {
		t.Errorf("PUT answered renew_after %q, renew_before %q; want 60d, 20d", st.RenewAfter, st.RenewBefore)
	}
	sp, err := e.store.Spec(ctx, st.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if sp.RenewAfter != 60*24*time.Hour || sp.RenewBefore != 20*24*time.Hour {
		t.Errorf("stored spec: renew_after %v, renew_before %v; want 1440h, 480h", sp.RenewAfter, sp.RenewBefore)
	}
	got, _, _, err := e.admin.Status(ctx, name, httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.RenewAfter != "60d" {
		t.Errorf("GET status: renew_after %q, want 60d", got.RenewAfter)
	}
	info, err := e.admin.Certificate(ctx, st.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if info.RenewAfter != "60d" || info.RenewBefore != "20d" {
		t.Errorf("GET certificate: renew_after %q, renew_before %q; want 60d, 20d", info.RenewAfter, info.RenewBefore)
	}

	// Changed, and then left out: not by age any more.
	if st, err = e.admin.PutName(ctx, name, &httpapi.NameRequest{RenewAfter: "36h"}); err != nil {
		t.Fatal(err)
	}
	if st.RenewAfter != "36h0m0s" || st.RenewBefore != "" {
		t.Errorf("PUT 36h: renew_after %q, renew_before %q; want 36h0m0s and none", st.RenewAfter, st.RenewBefore)
	}
	if st, err = e.admin.PutName(ctx, name, nil); err != nil {
		t.Fatal(err)
	}
	if sp, _ := e.store.Spec(ctx, st.Certificate); sp.RenewAfter != 0 || st.RenewAfter != "" {
		t.Errorf("PUT without renew_after: stored %v, shown %q; want none", sp.RenewAfter, st.RenewAfter)
	}

	for _, bad := range []string{"soon", "-5d", "30"} {
		_, err := e.admin.PutName(ctx, "bad.renew.test", &httpapi.NameRequest{RenewAfter: bad})
		var prob *httpapi.Problem
		if !errors.As(err, &prob) || prob.Status != http.StatusBadRequest || !strings.HasPrefix(prob.Detail, "renew_after: ") {
			t.Errorf("PUT renew_after %q: %v; want 400 naming renew_after", bad, err)
		}
	}
}
