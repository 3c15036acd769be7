package config

// prepare_helpers: long-running prepare commands ([defaults] and
// [[certificate]]).

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults of a prepare helper.
const (
	DefaultHelperReadyTimeout = 30 * time.Second
	DefaultHelperStopGrace    = 5 * time.Second
)

// IdentifierPlaceholder in a helper's ready_tcp or ready_url stands for the
// identifier the helper is started for.
const IdentifierPlaceholder = "{identifier}"

var helperKeys = []string{"command", "per_name", "ready_tcp", "ready_url", "ready_line", "ready_timeout", "stop_grace"}

// Helper is a long-running prepare command (prepare_helpers): started
// after the prepare commands, awaited until ready, kept running while the
// CA validates, and stopped (SIGTERM to its process group, SIGKILL after
// StopGrace) when the order ended, before the cleanup commands.
type Helper struct {
	// Command is the argv, run without a shell. Required.
	Command []string
	// PerName starts one helper per identifier, each with CERTFLEET_NAME
	// set to it (lematt's DOMAIN). Default false: one helper, with the
	// first identifier.
	PerName bool
	// ReadyTCP is a host:port that accepts connections once the helper
	// is ready. Default "".
	ReadyTCP string
	// ReadyURL is an http:// or https:// URL that answers (any status
	// below 500) once the helper is ready. Default "".
	ReadyURL string
	// ReadyLine is a regular expression (RE2 syntax) that a line the
	// helper writes to stdout matches once it is ready. Default "".
	// With none of the three, the helper is ready once started.
	ReadyLine string
	// ReadyTimeout bounds the wait for readiness; a helper not ready by
	// then fails the attempt. Default DefaultHelperReadyTimeout.
	ReadyTimeout time.Duration
	// StopGrace is how long the helper has to exit after SIGTERM.
	// Default DefaultHelperStopGrace.
	StopGrace time.Duration
}

// helpers decodes prepare_helpers; ok is false when the key is absent or
// had problems.
func (d *decoder) helpers(t *table) ([]Helper, bool) {
	v, p, ok := d.get(t, "prepare_helpers")
	if !ok {
		return nil, false
	}
	const how = `a list of tables, as in [{ command = ["ssh", "-N", "-R", "80:127.0.0.1:8080", "web1"], ready_tcp = "web1:80" }]`
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be %s, not %s", how, typeName(v))
		return nil, false
	}
	start := d.mark()
	out := make([]Helper, 0, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			d.problemf(p.index(i), "must be a table, not %s: prepare_helpers is %s", typeName(e), how)
			continue
		}
		out = append(out, d.helper(newTable(m, p.index(i))))
	}
	return out, d.mark() == start
}

func (d *decoder) helper(t *table) Helper {
	defer d.unknown(t, helperKeys)
	h := Helper{ReadyTimeout: DefaultHelperReadyTimeout, StopGrace: DefaultHelperStopGrace}
	if cmds, ok := d.argv(t, "command"); ok {
		h.Command = cmds
	} else if _, present := t.m["command"]; !present {
		d.problemf(t.p.key("command"), `required: the helper's program and arguments, as in ["ssh", "-N", "-R", "80:127.0.0.1:8080", "web1"]`)
	}
	if v, p, ok := d.get(t, "per_name"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		h.PerName = b
	}
	var checks []string
	if s, p, ok := d.str(t, "ready_tcp"); ok && s != "" {
		host, port, err := net.SplitHostPort(strings.ReplaceAll(s, IdentifierPlaceholder, "example.org"))
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			d.problemf(p, "%q is not host:port, as in \"web1.example.org:80\" or \"%s:80\"", s, IdentifierPlaceholder)
		}
		h.ReadyTCP = s
		checks = append(checks, "ready_tcp")
	}
	if s, p, ok := d.str(t, "ready_url"); ok && s != "" {
		u, err := url.Parse(strings.ReplaceAll(s, IdentifierPlaceholder, "example.org"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.problemf(p, "%q is not an http:// or https:// URL, as in \"http://%s/.well-known/acme-challenge/\"", s, IdentifierPlaceholder)
		}
		h.ReadyURL = s
		checks = append(checks, "ready_url")
	}
	if s, p, ok := d.str(t, "ready_line"); ok && s != "" {
		if _, err := regexp.Compile(s); err != nil {
			d.problemf(p, "%q is not a regular expression: %v", s, err)
		}
		h.ReadyLine = s
		checks = append(checks, "ready_line")
	}
	if len(checks) > 1 {
		d.problemf(t.p.key(checks[1]), "give one readiness check, not %s", strings.Join(checks, " and "))
	}
	for _, k := range []struct {
		key string
		v   *time.Duration
	}{{"ready_timeout", &h.ReadyTimeout}, {"stop_grace", &h.StopGrace}} {
		if s, p, ok := d.str(t, k.key); ok {
			m := d.mark()
			if v := d.duration(p, s); v > 0 {
				*k.v = v
			} else if d.mark() == m {
				d.problemf(p, "must be longer than 0, as in \"30s\"")
			}
		}
	}
	return h
}

// argv decodes one argv list at key; ok is false when the key is absent or
// had problems.
func (d *decoder) argv(t *table, key string) ([]string, bool) {
	start := d.mark()
	list, paths, p, ok := d.strList(t, key)
	if !ok {
		return nil, false
	}
	if len(list) == 0 {
		d.problemf(p, "empty command: give the program and its arguments")
		return nil, false
	}
	for i, s := range list {
		if strings.ContainsRune(s, 0) {
			d.problemf(paths[i], "argument contains a NUL byte")
		}
	}
	if strings.TrimSpace(list[0]) == "" {
		d.problemf(paths[0], "the program name is empty")
	}
	return list, d.mark() == start
}

func cloneHelpers(hs []Helper) []Helper {
	if hs == nil {
		return nil
	}
	out := make([]Helper, len(hs))
	for i, h := range hs {
		h.Command = append([]string(nil), h.Command...)
		out[i] = h
	}
	return out
}
