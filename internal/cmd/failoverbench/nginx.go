package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// frontNginx is a real nginx, run as a child process with its own prefix,
// configuration, pid file and logs under dir, as the HTTP reverse proxy in
// front of the instances' http-01 responders: an upstream of the three,
// and a failed attempt (connection refused, reset, closed before the
// response header: a SIGKILLed instance; or no answer in time) retried on
// the next instance. A validation GET is idempotent, so the retry is safe.
type frontNginx struct {
	cmd    *exec.Cmd
	prefix string
	access string // the access log: one line per validation, the upstreams tried
	exited chan error
}

// nginxConf is the configuration: listen on 127.0.0.1:%[1]d, upstreams
// %[2]s (server lines), everything else under the prefix %[3]q.
const nginxConf = `# failoverbench: the http-01 front of the three instances.
daemon off;
master_process on;
worker_processes 1;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;
%[4]s
events { worker_connections 1024; }
http {
	client_body_temp_path %[3]s/client_body;
	proxy_temp_path %[3]s/proxy;
	fastcgi_temp_path %[3]s/fastcgi;
	uwsgi_temp_path %[3]s/uwsgi;
	scgi_temp_path %[3]s/scgi;
	log_format validation '$msec "$request" $status upstreams="$upstream_addr" statuses="$upstream_status" time=$request_time';
	access_log %[3]s/access.log validation;

	upstream responders {
		# One failed attempt takes an instance out for 10 s; a dead one
		# is then not even tried until it has been out that long.
%[2]s	}
	server {
		listen 127.0.0.1:%[1]d;
		location / {
			proxy_pass http://responders;
			proxy_set_header Host $http_host;
			# nginx's default is "error timeout": a connection refused or
			# reset, or closed before the response header (an instance
			# killed mid-request), and no header in time, go to the next
			# instance. A GET is idempotent: the retry is safe.
			proxy_next_upstream error timeout;
			proxy_next_upstream_tries 3;
			proxy_next_upstream_timeout 10s;
			proxy_connect_timeout 1s;
			proxy_read_timeout 5s;
			proxy_send_timeout 5s;
		}
	}
}
`

// startNginx starts nginx on 127.0.0.1:port in front of the responder
// ports, and waits until it accepts connections.
func startNginx(bin, dir string, port int, responders []int) (*frontNginx, error) {
	prefix := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return nil, fmt.Errorf("nginx: create its prefix %s: %w", prefix, err)
	}
	var servers strings.Builder
	for _, p := range responders {
		fmt.Fprintf(&servers, "\t\tserver 127.0.0.1:%d max_fails=1 fail_timeout=10s;\n", p)
	}
	user := ""
	if os.Geteuid() == 0 {
		// As root nginx's workers would switch to an unprivileged user
		// that cannot enter the run's directory (0700).
		user = "user root;"
	}
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, port, servers.String(), prefix, user)), 0o644); err != nil {
		return nil, fmt.Errorf("nginx: write %s: %w", conf, err)
	}
	// -e: the error log before the configuration is read (not the
	// package's /var/log/nginx).
	check := exec.Command(bin, "-t", "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
	if out, err := check.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx: %s -t rejects %s: %w: %s", bin, conf, err, out)
	}
	cmd := exec.Command(bin, "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
	out, err := os.Create(filepath.Join(prefix, "stderr"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nginx: start %s: %w", bin, err)
	}
	ng := &frontNginx{cmd: cmd, prefix: prefix, access: filepath.Join(prefix, "access.log"), exited: make(chan error, 1)}
	go func() { ng.exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return ng, nil
		}
		select {
		case err := <-ng.exited:
			return nil, fmt.Errorf("nginx exited at start (%v); see %s/error.log", err, prefix)
		default:
		}
		if time.Now().After(deadline) {
			ng.stop()
			return nil, fmt.Errorf("nginx does not accept on 127.0.0.1:%d after 10 s; see %s/error.log", port, prefix)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports an error if nginx has exited.
func (ng *frontNginx) alive() error {
	select {
	case err := <-ng.exited:
		ng.exited <- err
		return fmt.Errorf("nginx exited during the run (%v); see %s/error.log", err, ng.prefix)
	default:
		return nil
	}
}

// stop ends nginx (SIGQUIT: graceful) and waits for it.
func (ng *frontNginx) stop() {
	if ng.alive() != nil {
		return
	}
	ng.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-ng.exited:
	case <-time.After(10 * time.Second):
		ng.cmd.Process.Kill()
		<-ng.exited
	}
}

// nginxCounts is what nginx's access log shows of the validations.
type nginxCounts struct {
	requests int      // requests nginx received: the CA's validations and certfleet's self-test probes
	retried  int      // answered after more than one instance was tried
	probes   int      // of the retried: certfleet's self-test probes (certfleet-probe-…), not the CA's
	failed   int      // answered with an error status by nginx itself (no instance answered)
	examples []string // retried requests' lines, the first few

	// From the error log: the failed attempts nginx retried or gave up.
	inFlight int // the connection closed or reset before the response header: an instance that died mid-request
	refused  int // the connection refused: an instance not (yet, or any more) listening
}

// counts reads the access log: a request whose $upstream_addr lists more
// than one upstream ("a, b") was retried on another instance.
func (ng *frontNginx) counts() (nginxCounts, error) {
	var c nginxCounts
	f, err := os.Open(ng.access)
	if err != nil {
		return c, fmt.Errorf("nginx: read its access log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		_, ups, ok := strings.Cut(line, ` upstreams="`)
		if !ok {
			return c, errors.New("nginx: access log line without upstreams: " + line)
		}
		ups, _, _ = strings.Cut(ups, `"`)
		c.requests++
		if strings.Contains(ups, ",") {
			c.retried++
			if strings.Contains(line, "/certfleet-probe-") {
				c.probes++
			}
			if len(c.examples) < 5 {
				c.examples = append(c.examples, line)
			}
		}
		// nginx's own 502/504: every instance tried failed.
		if _, st, ok := strings.Cut(line, `" `); ok && (strings.HasPrefix(st, "502 ") || strings.HasPrefix(st, "504 ")) {
			c.failed++
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("nginx: read its access log: %w", err)
	}
	if err := eachLine(filepath.Join(ng.prefix, "error.log"), func(line string) {
		switch {
		case !strings.Contains(line, "[error]"):
		case strings.Contains(line, "while reading response header from upstream"):
			c.inFlight++
		case strings.Contains(line, "while connecting to upstream"):
			c.refused++
		}
	}); err != nil {
		return c, fmt.Errorf("nginx: read its error log: %w", err)
	}
	return c, nil
}
