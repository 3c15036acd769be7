package daemon_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// nginxFront is a real nginx on the name's http-01 port, in front of
// certfleet's responder (a customer's web server).
type nginxFront struct {
	dir, conf string
	port      int
	respPort  int
}

// conf writes nginx's configuration: the customer's site (404 for every
// path) and, with rule, the forwarding of /.well-known/acme-challenge/ to
// certfleet. The access log records the status and user agent of each
// request.
func (f *nginxFront) write(t *testing.T, rule bool) {
	t.Helper()
	forward := ""
	if rule {
		forward = fmt.Sprintf(`location /.well-known/acme-challenge/ { proxy_pass http://127.0.0.1:%d; proxy_set_header Host $host; }`, f.respPort)
	}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  log_format probe '$status "$http_user_agent" $request_uri';
  access_log %[1]s/access.log probe;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server {
    listen 127.0.0.1:%[2]d;
    server_name shop.example.test;
    %[3]s
    location / { return 404; }
  }
}
`, f.dir, f.port, forward)
	if err := os.WriteFile(f.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startNginx starts nginx on port, without the forwarding rule, until the
// test ends.
func startNginx(t *testing.T, port, respPort int) *nginxFront {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx is not installed (apt-get install nginx-light)")
	}
	dir := t.TempDir()
	f := &nginxFront{dir: dir, conf: filepath.Join(dir, "nginx.conf"), port: port, respPort: respPort}
	f.write(t, false)
	cmd := exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", f.conf, "-g", "daemon off;")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			a, _ := os.ReadFile(filepath.Join(dir, "access.log"))
			t.Logf("nginx error log:\n%s\naccess log:\n%s", b, a)
		}
	})
	waitWithin(t, 10*time.Second, "nginx never wrote its pid file", func() bool {
		_, err := os.Stat(filepath.Join(dir, "nginx.pid"))
		return err == nil
	})
	return f
}

// reload makes nginx read its configuration again (nginx -s reload).
func (f *nginxFront) reload(t *testing.T) {
	t.Helper()
	out, err := exec.Command("nginx", "-p", f.dir, "-e", filepath.Join(f.dir, "error.log"), "-c", f.conf, "-s", "reload").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -s reload: %v\n%s", err, out)
	}
}

// validations returns the statuses nginx answered the CA's validator
// (Pebble's user agent) with.
func (f *nginxFront) validations(t *testing.T) []string {
	t.Helper()
	file, err := os.Open(filepath.Join(f.dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var out []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "LetsEncrypt-Pebble-VA") {
			out = append(out, strings.Fields(sc.Text())[0])
		}
	}
	return out
}

// TestSelfTestBehindNginx (issue 14): an http-01 name whose site is served
// by a real nginx waits, with the reason, while nginx lacks the
// /.well-known/acme-challenge/ forwarding rule, and costs no order; once
// the rule is added and nginx reloaded it is issued, and the CA's
// validator never got an answer other than 200 from nginx: zero failed
// validations.
func TestSelfTestBehindNginx(t *testing.T) {
	n := startReadyNet(t)
	n.RespPort = daemontest.FreePort(t)
	front := startNginx(t, n.HTTPPort, n.RespPort)

	d := n.serve(t, "", "[[certificate]]\nname = \"shop\"\nidentifiers = [\"shop.example.test\"]\n")
	waitWithin(t, 20*time.Second, "shop.example.test never waited twice", func() bool {
		w := waiting(t, d.Store, "shop")
		return len(w) == 1 && w[0].Tests >= 2
	})
	w := waiting(t, d.Store, "shop")[0]
	if w.Code != certfleet.WaitHTTP || !strings.Contains(w.Reason, "answered 404 Not Found") || !strings.Contains(w.Reason, `server "nginx`) {
		t.Errorf("waiting %s: %q, want the http reason with nginx's 404", w.Code, w.Reason)
	}
	if got := n.CA.NewOrders(); got != 0 {
		t.Fatalf("%d orders placed while nginx lacks its rule, want 0", got)
	}

	front.write(t, true)
	front.reload(t)
	waitWithin(t, 30*time.Second, "never issued once nginx forwards", func() bool { return issuedNow(t, d.Store, "shop") != nil })
	if got := n.CA.NewOrders(); got != 1 {
		t.Errorf("%d orders, want 1", got)
	}
	got := front.validations(t)
	if len(got) == 0 {
		t.Fatal("the CA's validator never came through nginx")
	}
	for _, status := range got {
		if status != "200" {
			t.Errorf("nginx answered the CA's validator %v, want only 200s (no failed validation)", got)
			break
		}
	}
	attempts, err := d.Store.Attempts(t.Context(), certfleet.JobKey{Spec: "shop", KeyType: certfleet.ECDSAP256}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attempts {
		if a.Outcome == certfleet.OutcomeFailed {
			t.Errorf("a failed attempt: %s", a.Error)
		}
	}
}
