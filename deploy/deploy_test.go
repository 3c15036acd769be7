package deploy_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
)

// testCA is a root and an intermediate that sign test leaves, so chains have
// a real intermediate to split off.
type testCA struct {
	inter    *x509.Certificate
	interKey crypto.Signer
	interPEM []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	rootKey := mustKey(t, certfleet.ECDSAP256)
	root := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ = x509.ParseCertificate(rootDER)
	interKey := mustKey(t, certfleet.ECDSAP256)
	inter := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, inter, root, interKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ = x509.ParseCertificate(interDER)
	return &testCA{inter: inter, interKey: interKey,
		interPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER})}
}

func mustKey(t *testing.T, kt certfleet.KeyType) crypto.Signer {
	t.Helper()
	k, err := certfleet.GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue makes an issuance of spec with key type kt, as the archive holds it.
func (ca *testCA) issue(t *testing.T, spec certfleet.CertificateSpec, kt certfleet.KeyType) certfleet.Issuance {
	t.Helper()
	key := mustKey(t, kt)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: spec.Identifiers[0].Value},
		DNSNames:  certfleet.IdentifierValues(spec.Identifiers),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, key.Public(), ca.interKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	keyPEM, err := certfleet.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return certfleet.Issuance{
		ID: 1, Spec: spec.Name, KeyType: kt, Identifiers: spec.Identifiers,
		Serial: hex.EncodeToString(serial.Bytes()), Fingerprint: certfleet.Fingerprint(leaf),
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		ChainPEM: append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.interPEM...),
		KeyPEM:   keyPEM,
	}
}

func testSpec(keyTypes ...certfleet.KeyType) certfleet.CertificateSpec {
	return certfleet.CertificateSpec{
		Name: "www",
		Identifiers: []certfleet.Identifier{
			{Type: certfleet.IdentifierDNS, Value: "example.org"},
			{Type: certfleet.IdentifierDNS, Value: "www.example.org"},
		},
		KeyTypes:  keyTypes,
		Challenge: certfleet.ChallengeHTTP01,
	}
}

func mustWrite(t *testing.T, target deploy.Target, spec certfleet.CertificateSpec, iss certfleet.Issuance) deploy.Result {
	t.Helper()
	res, err := new(deploy.Writer).Write(t.Context(), target, spec, iss)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return res
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// counter returns a command that appends a line to a file per run, and a
// function that reads the count.
func counter(t *testing.T) ([]string, func() int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "count")
	cmd := []string{"sh", "-c", `echo x >> "$1"`, "sh", path}
	return cmd, func() int {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return 0
		} else if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "\n")
	}
}

func TestWriteFilesAndModes(t *testing.T) {
	for _, umask := range []int{0o000, 0o077} {
		t.Run("umask "+strconv.FormatInt(int64(umask), 8), func(t *testing.T) {
			old := syscall.Umask(umask)
			t.Cleanup(func() { syscall.Umask(old) })

			ca := newTestCA(t)
			spec := testSpec(certfleet.ECDSAP256)
			iss := ca.issue(t, spec, certfleet.ECDSAP256)
			dir := filepath.Join(t.TempDir(), "live", "www")
			res := mustWrite(t, deploy.Target{Dir: dir}, spec, iss)

			wantFiles := []string{deploy.KeyFile, deploy.CertFile, deploy.ChainFile, deploy.FullchainFile}
			if !res.Changed || len(res.Files) != len(wantFiles) || res.Dir != dir {
				t.Fatalf("result %+v, want Changed with %d files in %s", res, len(wantFiles), dir)
			}
			for i, name := range wantFiles {
				if res.Files[i] != filepath.Join(dir, name) {
					t.Errorf("file %d written: %s, want %s (key first)", i, res.Files[i], name)
				}
			}
			leaf, chain, _ := iss.SplitChain()
			for name, want := range map[string][]byte{
				deploy.KeyFile:       iss.KeyPEM,
				deploy.CertFile:      leaf,
				deploy.ChainFile:     ca.interPEM,
				deploy.FullchainFile: append(append([]byte(nil), leaf...), chain...),
			} {
				if got := mustRead(t, filepath.Join(dir, name)); !bytes.Equal(got, want) {
					t.Errorf("%s:\n%s\nwant\n%s", name, got, want)
				}
			}
			for name, want := range map[string]os.FileMode{
				deploy.KeyFile: 0o600, deploy.CertFile: 0o644, deploy.ChainFile: 0o644, deploy.FullchainFile: 0o644,
			} {
				if got := mustMode(t, filepath.Join(dir, name)); got != want {
					t.Errorf("%s: mode %v, want %v", name, got, want)
				}
			}
			if got := mustMode(t, dir); got != deploy.DefaultDirMode {
				t.Errorf("dir mode %v, want %v", got, deploy.DefaultDirMode)
			}
			// A server can load what we wrote.
			if _, err := tls.LoadX509KeyPair(filepath.Join(dir, deploy.FullchainFile), filepath.Join(dir, deploy.KeyFile)); err != nil {
				t.Errorf("load written pair: %v", err)
			}
			// No temporary files left behind.
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file left: %s", e.Name())
				}
			}
		})
	}
}

func TestIdempotentAndCommandsOnChange(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256)
	iss := ca.issue(t, spec, certfleet.ECDSAP256)
	cmd, count := counter(t)
	target := deploy.Target{Dir: t.TempDir(), Commands: [][]string{cmd}}

	res := mustWrite(t, target, spec, iss)
	if !res.Changed || len(res.Commands) != 1 || count() != 1 {
		t.Fatalf("first Write: changed %v, %d commands, count %d; want true, 1, 1", res.Changed, len(res.Commands), count())
	}
	before := mustRead(t, filepath.Join(target.Dir, deploy.CertFile))
	stBefore, _ := os.Stat(filepath.Join(target.Dir, deploy.KeyFile))

	res = mustWrite(t, target, spec, iss)
	if res.Changed || len(res.Files) != 0 || len(res.Commands) != 0 || count() != 1 {
		t.Fatalf("same issuance again: %+v, count %d; want nothing done, count 1", res, count())
	}
	stAfter, _ := os.Stat(filepath.Join(target.Dir, deploy.KeyFile))
	if !os.SameFile(stBefore, stAfter) {
		t.Error("privkey.pem was replaced although unchanged")
	}

	iss2 := ca.issue(t, spec, certfleet.ECDSAP256)
	res = mustWrite(t, target, spec, iss2)
	// chain.pem is the same intermediate: left alone.
	if !res.Changed || len(res.Files) != 3 || count() != 2 {
		t.Fatalf("new issuance: %+v, count %d; want key, cert and fullchain rewritten, count 2", res, count())
	}
	if bytes.Equal(before, mustRead(t, filepath.Join(target.Dir, deploy.CertFile))) {
		t.Error("cert.pem unchanged after a new issuance")
	}

	// Someone loosened the key's mode: only the key is rewritten.
	if err := os.Chmod(filepath.Join(target.Dir, deploy.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	res = mustWrite(t, target, spec, iss2)
	if len(res.Files) != 1 || res.Files[0] != filepath.Join(target.Dir, deploy.KeyFile) || count() != 3 {
		t.Fatalf("after chmod: files %v, count %d; want only privkey.pem, count 3", res.Files, count())
	}
	if got := mustMode(t, filepath.Join(target.Dir, deploy.KeyFile)); got != 0o600 {
		t.Errorf("key mode %v, want 0600", got)
	}
}

func TestCommandEnvironment(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP384)
	iss := ca.issue(t, spec, certfleet.ECDSAP384)
	out := filepath.Join(t.TempDir(), "env")
	dir := t.TempDir()
	t.Setenv("CERTFLEET_TEST_INHERITED", "yes")
	mustWrite(t, deploy.Target{Dir: dir, Commands: [][]string{{"sh", "-c", `env > "$1"; pwd >> "$1"`, "sh", out}}}, spec, iss)

	got := map[string]string{}
	lines := strings.Split(strings.TrimSpace(string(mustRead(t, out))), "\n")
	for _, line := range lines[:len(lines)-1] {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	for k, want := range map[string]string{
		"CERTFLEET_CERTIFICATE":    "www",
		"CERTFLEET_KEY_TYPE":       "ecdsa-p384",
		"CERTFLEET_NAMES":          "example.org www.example.org",
		"CERTFLEET_DIR":            dir,
		"CERTFLEET_CERT_PATH":      filepath.Join(dir, "cert.pem"),
		"CERTFLEET_CHAIN_PATH":     filepath.Join(dir, "chain.pem"),
		"CERTFLEET_FULLCHAIN_PATH": filepath.Join(dir, "fullchain.pem"),
		"CERTFLEET_KEY_PATH":       filepath.Join(dir, "privkey.pem"),
		"CERTFLEET_SERIAL":         certfleet.FormatSerial(iss.Serial), // as openssl prints it (issue 15)
		"CERTFLEET_NOT_AFTER":      iss.NotAfter.UTC().Format(time.RFC3339),
		"CERTFLEET_TEST_INHERITED": "yes",
	} {
		if got[k] != want {
			t.Errorf("%s=%q, want %q", k, got[k], want)
		}
	}
	if pwd := lines[len(lines)-1]; pwd != dir {
		t.Errorf("command ran in %q, want %q", pwd, dir)
	}
}

func TestCommandFailureReportedAndRetried(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256)
	iss := ca.issue(t, spec, certfleet.ECDSAP256)
	fixed := filepath.Join(t.TempDir(), "fixed")
	fail := []string{"sh", "-c", `test -e "$1" && exit 0; echo "nginx: [emerg] bad config"; exit 3`, "sh", fixed}
	cmd, count := counter(t)
	target := deploy.Target{Dir: t.TempDir(), Commands: [][]string{fail, cmd}}

	res, err := new(deploy.Writer).Write(t.Context(), target, spec, iss)
	var ce *deploy.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("Write error %v, want a *CommandError", err)
	}
	if ce.ExitCode != 3 || !strings.Contains(ce.Output, "bad config") || ce.TimedOut {
		t.Errorf("CommandError %+v, want exit 3 with output", ce)
	}
	for _, want := range []string{"exit status 3", "bad config", "sh -c"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Error("error contains key material")
	}
	// The files are in place, and the later command still ran.
	if !res.Changed || len(res.Commands) != 2 || res.Commands[1].Err != nil || count() != 1 {
		t.Fatalf("result %+v, count %d; want files written and both commands run", res, count())
	}

	// The same issuance again: files are unchanged but the commands have
	// not succeeded yet, so they run again.
	if _, err := new(deploy.Writer).Write(t.Context(), target, spec, iss); err == nil {
		t.Fatal("second Write with the command still failing succeeded")
	}
	if count() != 2 {
		t.Fatalf("count %d, want 2 (commands retried)", count())
	}
	if err := os.WriteFile(fixed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res = mustWrite(t, target, spec, iss)
	if res.Changed || len(res.Commands) != 2 || count() != 3 {
		t.Fatalf("after the fix: %+v, count %d; want commands run, count 3", res, count())
	}
	res = mustWrite(t, target, spec, iss)
	if len(res.Commands) != 0 || count() != 3 {
		t.Fatalf("after success: %d commands, count %d; want none, count 3", len(res.Commands), count())
	}
}

func TestCommandTimeoutKillsGroup(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256)
	iss := ca.issue(t, spec, certfleet.ECDSAP256)
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The shell starts a child and waits: both must die at the timeout.
	cmd := []string{"sh", "-c", `echo started; sleep 30 & echo $! > "$1"; wait`, "sh", pidFile}
	target := deploy.Target{Dir: t.TempDir(), Commands: [][]string{cmd}, Timeout: 300 * time.Millisecond}

	start := time.Now()
	_, err := new(deploy.Writer).Write(t.Context(), target, spec, iss)
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("Write took %v, want about the 300ms timeout", elapsed)
	}
	var ce *deploy.CommandError
	if !errors.As(err, &ce) || !ce.TimedOut || ce.ExitCode != -1 {
		t.Fatalf("error %v, want a timed-out *CommandError", err)
	}
	if !strings.Contains(err.Error(), "timeout") || !strings.Contains(ce.Output, "started") {
		t.Errorf("error %q / output %q, want timeout and output tail", err, ce.Output)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(mustRead(t, pidFile))))
	if err != nil {
		t.Fatal(err)
	}
	// The grandchild was killed with its group (it may linger as a zombie
	// of init for a moment).
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the timed-out command is still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	// Field 3, after "(comm)".
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestOutputTailBounded(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256)
	iss := ca.issue(t, spec, certfleet.ECDSAP256)
	cmd := []string{"sh", "-c", `i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo LAST; exit 1`}
	_, err := new(deploy.Writer).Write(t.Context(), deploy.Target{Dir: t.TempDir(), Commands: [][]string{cmd}}, spec, iss)
	var ce *deploy.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want *CommandError", err)
	}
	if len(ce.Output) > 4<<10 || !strings.HasSuffix(ce.Output, "LAST\n") || strings.Contains(ce.Output, "line 0\n") {
		t.Errorf("output of %d bytes ending %q: want the last 4 KiB", len(ce.Output), ce.Output[max(0, len(ce.Output)-20):])
	}
}

func TestDualLayout(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256, certfleet.RSA2048)
	dir := t.TempDir()
	envOut := t.TempDir()
	cmd := []string{"sh", "-c", `printf %s "$CERTFLEET_DIR" > "$1/$CERTFLEET_KEY_TYPE"`, "sh", envOut}
	target := deploy.Target{Dir: dir, Commands: [][]string{cmd}}
	for _, kt := range spec.KeyTypes {
		iss := ca.issue(t, spec, kt)
		res := mustWrite(t, target, spec, iss)
		sub := filepath.Join(dir, kt.Family())
		if res.Dir != sub || deploy.KeyTypeDir(dir, spec, kt) != sub {
			t.Errorf("%s: dir %s, want %s", kt, res.Dir, sub)
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(sub, deploy.FullchainFile), filepath.Join(sub, deploy.KeyFile))
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		if got, _ := certfleet.KeyTypeOf(leaf.PublicKey); got != kt {
			t.Errorf("%s/: key type %s, want %s", kt.Family(), got, kt)
		}
		if got := string(mustRead(t, filepath.Join(envOut, string(kt)))); got != sub {
			t.Errorf("%s: CERTFLEET_DIR %q, want %q", kt, got, sub)
		}
	}
	// Nothing at the top level: a dual layout is never ambiguous.
	if _, err := os.Stat(filepath.Join(dir, deploy.CertFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("top-level cert.pem in a dual layout: %v", err)
	}
}

func TestNoShellInterpretation(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256)
	iss := ca.issue(t, spec, certfleet.ECDSAP256)
	root := t.TempDir()
	dir := filepath.Join(root, "$(touch pwned);`touch pwned2`")
	out := filepath.Join(root, "out")
	cmds := [][]string{
		{"sh", "-c", `printf %s "$CERTFLEET_DIR" > "$1"`, "sh", out},
		// An argv word with metacharacters is a plain argument.
		{"touch", "$(touch pwned3)"},
	}
	mustWrite(t, deploy.Target{Dir: dir, Commands: cmds}, spec, iss)
	if got := string(mustRead(t, out)); got != dir {
		t.Errorf("CERTFLEET_DIR %q, want %q", got, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "$(touch pwned3)")); err != nil {
		t.Errorf("literal argument file not created: %v", err)
	}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if strings.HasPrefix(d.Name(), "pwned") {
			t.Errorf("a shell interpreted a name: %s exists", p)
		}
		return nil
	})
}

func TestOwner(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256)
	iss := ca.issue(t, spec, certfleet.ECDSAP256)
	uid, gid := os.Getuid(), os.Getgid()
	type owner struct{ uid, gid int }
	cases := []struct {
		name         string
		owner, group string
		want         owner
	}{
		{name: "numeric current", owner: strconv.Itoa(uid), group: strconv.Itoa(gid), want: owner{uid, gid}},
	}
	if uid == 0 {
		cases = append(cases,
			struct {
				name         string
				owner, group string
				want         owner
			}{name: "other numeric, root only", owner: "65534", group: "65534", want: owner{65534, 65534}},
			struct {
				name         string
				owner, group string
				want         owner
			}{name: "group only by name", group: "nogroup", want: owner{0, 65534}},
		)
	} else {
		t.Log("not root: chown to other users is not tested")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			target := deploy.Target{Dir: dir, Owner: tc.owner, Group: tc.group, KeyMode: 0o640}
			mustWrite(t, target, spec, iss)
			for _, name := range []string{deploy.KeyFile, deploy.CertFile, deploy.ChainFile, deploy.FullchainFile} {
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				s := st.Sys().(*syscall.Stat_t)
				if got := (owner{int(s.Uid), int(s.Gid)}); got != tc.want {
					t.Errorf("%s owned by %v, want %v", name, got, tc.want)
				}
			}
			if got := mustMode(t, filepath.Join(dir, deploy.KeyFile)); got != 0o640 {
				t.Errorf("key mode %v, want 0640", got)
			}
			if res := mustWrite(t, target, spec, iss); res.Changed {
				t.Errorf("second Write changed %v", res.Files)
			}
		})
	}
}

func TestRejects(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256)
	iss := ca.issue(t, spec, certfleet.ECDSAP256)
	other := ca.issue(t, spec, certfleet.ECDSAP256)

	mismatched := iss
	mismatched.KeyPEM = other.KeyPEM
	otherSpec := iss
	otherSpec.Spec = "other"
	wrongType := iss
	wrongType.KeyType = certfleet.RSA2048
	noChain := iss
	noChain.ChainPEM = nil

	for _, tc := range []struct {
		name   string
		target deploy.Target
		iss    certfleet.Issuance
	}{
		{name: "key does not match", target: deploy.Target{}, iss: mismatched},
		{name: "issuance of another spec", iss: otherSpec},
		{name: "key type not in spec", iss: wrongType},
		{name: "no certificate", iss: noChain},
		{name: "no directory", target: deploy.Target{Dir: "-"}, iss: iss},
		{name: "empty command", target: deploy.Target{Commands: [][]string{{}}}, iss: iss},
		{name: "unknown owner", target: deploy.Target{Owner: "no-such-user-certfleet"}, iss: iss},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "www")
			target := tc.target
			switch target.Dir {
			case "":
				target.Dir = dir
			case "-":
				target.Dir = ""
			}
			_, err := new(deploy.Writer).Write(t.Context(), target, spec, tc.iss)
			if got := certfleet.ErrorCode(err); got != certfleet.EINVALID {
				t.Fatalf("error %v (code %q), want %q", err, got, certfleet.EINVALID)
			}
			msg := err.Error()
			for _, secret := range [][]byte{iss.KeyPEM, other.KeyPEM} {
				block, _ := pem.Decode(secret)
				if strings.Contains(msg, "PRIVATE KEY") || strings.Contains(msg, string(secret[40:80])) || bytes.Contains([]byte(msg), block.Bytes[8:24]) {
					t.Errorf("error %q contains key material", msg)
				}
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("directory created by a rejected Write: %v", err)
			}
		})
	}
}

func TestWithoutKeyLeavesKeyAlone(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(certfleet.ECDSAP256)
	iss := ca.issue(t, spec, certfleet.ECDSAP256)
	dir := t.TempDir()
	keyPath := filepath.Join(dir, deploy.KeyFile)
	if err := os.WriteFile(keyPath, []byte("operator's key"), 0o600); err != nil {
		t.Fatal(err)
	}
	iss.KeyPEM = nil // CSR mode: the key lives on the host
	res := mustWrite(t, deploy.Target{Dir: dir}, spec, iss)
	if len(res.Files) != 3 {
		t.Errorf("files %v, want cert, chain and fullchain only", res.Files)
	}
	if got := string(mustRead(t, keyPath)); got != "operator's key" {
		t.Errorf("privkey.pem = %q, want it untouched", got)
	}
}
