package main

import (
	"crypto"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestAccountCommands is issue 6 §7 through the command line against
// Pebble: two accounts of one CA; account list shows both (never a key);
// rollover of one changes its key at the CA (the old key is refused) and
// its next certificate is issued with the new key; deactivate needs --yes,
// then the account's certificates fail with what to do and no account is
// registered behind the operator's back; register makes a new account and
// the certificate is issued.
func TestAccountCommands(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	certs := func(extra string) string {
		return fmt.Sprintf(`[accounts.shop]
email = "shop@example.org"
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
[[certificate]]
name = "shop"
identifiers = ["shop.certfleet.test"]
account = "shop"
%s`, extra)
	}
	path := daemontest.WriteConfig(t, dir, ca, port, certs(""))

	// Before any order: both configured, none registered.
	code, out, errOut := runCLI(t, "account", "list", "-config", path)
	if code != 0 || strings.Count(out, "not registered yet") != 2 {
		t.Fatalf("account list before any order: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: %d\n%s\n%s", code, out, errOut)
	}
	store := openForTest(t, filepath.Join(dir, "state.db"), "")
	shopBefore, err := store.Account(t.Context(), ca.DirectoryURL(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	code, out, _ = runCLI(t, "account", "list", "-config", path)
	if code != 0 || strings.Count(out, " valid ") != 2 || !strings.Contains(out, shopBefore.URL) || !strings.Contains(out, "ecdsa-p256") ||
		strings.Contains(out, "PRIVATE") || strings.Contains(out, "not registered") {
		t.Fatalf("account list after issuing: exit %d\n%s", code, out)
	}

	// Rollover needs a name; then the CA knows the account by the new key.
	if code, _, errOut := runCLI(t, "account", "rollover", "-config", path); code != 2 || !strings.Contains(errOut, "NAME") {
		t.Fatalf("rollover without a name: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "account", "rollover", "-config", path, "nope"); code != 2 || !strings.Contains(errOut, `no account "nope"`) {
		t.Fatalf("rollover of an unknown account: exit %d %s", code, errOut)
	}
	if code, out, errOut := runCLI(t, "account", "rollover", "-config", path, "shop"); code != 0 || !strings.Contains(out, "key rolled over") {
		t.Fatalf("rollover: exit %d\n%s\n%s", code, out, errOut)
	}
	store = openForTest(t, filepath.Join(dir, "state.db"), "")
	shopAfter, err := store.Account(t.Context(), ca.DirectoryURL(), "shop")
	store.Close()
	if err != nil || string(shopAfter.KeyPEM) == string(shopBefore.KeyPEM) || shopAfter.URL != shopBefore.URL {
		t.Fatalf("after rollover: new key %v, url %q (was %q), %v", string(shopAfter.KeyPEM) != string(shopBefore.KeyPEM), shopAfter.URL, shopBefore.URL, err)
	}
	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient()}
	oldKey, err := certfleet.ParsePrivateKey(shopBefore.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetAccount(t.Context(), acme.Account{PrivateKey: oldKey}); !isProblem(err, acme.ProblemTypeAccountDoesNotExist) {
		t.Fatalf("the CA still knows the old key: %v", err)
	}
	// A new certificate of the account is issued with the new key.
	path = daemontest.WriteConfig(t, dir, ca, port, certs("[[certificate]]\nname = \"shop2\"\nidentifiers = [\"shop2.certfleet.test\"]\naccount = \"shop\"\n"))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 || !strings.Contains(out, "issued   shop2") {
		t.Fatalf("issue after rollover: %d\n%s\n%s", code, out, errOut)
	}

	// Deactivation: refused without --yes, then done.
	if code, _, errOut := runCLI(t, "account", "deactivate", "-config", path, "shop"); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("deactivate without --yes: exit %d %s", code, errOut)
	}
	code, out, errOut = runCLI(t, "account", "deactivate", "-config", path, "--yes", "shop")
	if code != 0 || !strings.Contains(out, "deactivated") || !strings.Contains(out, "shop2") {
		t.Fatalf("deactivate: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := client.GetAccount(t.Context(), acme.Account{PrivateKey: mustPrivateKey(t, shopAfter.KeyPEM)}); !isProblem(err, acme.ProblemTypeUnauthorized) {
		t.Fatalf("the CA does not refuse the deactivated account: %v", err)
	}
	// Its certificates fail with what to do; the other account is fine.
	path = daemontest.WriteConfig(t, dir, ca, port, certs("[[certificate]]\nname = \"shop3\"\nidentifiers = [\"shop3.certfleet.test\"]\naccount = \"shop\"\n"+
		"[[certificate]]\nname = \"web2\"\nidentifiers = [\"web2.certfleet.test\"]\n"))
	code, out, errOut = runCLI(t, "issue", "-config", path)
	if code != 1 || !strings.Contains(out, "issued   web2") || !strings.Contains(out, "FAILED   shop3") ||
		!strings.Contains(out, "was deactivated") || !strings.Contains(out, "certfleet account register shop") {
		t.Fatalf("issue with a deactivated account: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "account", "list", "-config", path)
	if code != 0 || !strings.Contains(out, "deactivated since") || strings.Count(out, "\nshop ") != 1 {
		t.Fatalf("account list after deactivation (one shop account, deactivated):\n%s", out)
	}

	// register makes a new account and retries the failed certificate.
	code, out, errOut = runCLI(t, "account", "register", "-config", path, "shop")
	if code != 0 || !strings.Contains(out, `account "shop" registered`) || !strings.Contains(out, "retrying shop3/ecdsa-p256 now") {
		t.Fatalf("register: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 || !strings.Contains(out, "issued   shop3") {
		t.Fatalf("issue after register: %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "account", "register", "-config", path, "shop"); code != 1 || !strings.Contains(errOut, "already registered") {
		t.Fatalf("register of a valid account: exit %d %s", code, errOut)
	}
}

func isProblem(err error, typ string) bool {
	var p acme.Problem
	return errors.As(err, &p) && p.Type == typ
}

func mustPrivateKey(t *testing.T, pemKey []byte) crypto.Signer {
	t.Helper()
	k, err := certfleet.ParsePrivateKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
