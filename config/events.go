package config

import (
	"maps"
	"net/url"
	pathpkg "path"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// eventsKeys are the keys of [events]; hookKeys those of
// [events.hooks.NAME].
var (
	eventsKeys = []string{"hooks"}
	hookKeys   = []string{"type", "types", "certificates", "url", "secret_file", "socket", "ack", "command", "timeout"}
)

// Hook types.
const (
	HookWebhook = "webhook"
	HookSocket  = "socket"
	HookCommand = "command"
)

// Default timeouts of hooks, by type.
const (
	DefaultHookWebhookTimeout = 10 * time.Second
	DefaultHookSocketTimeout  = 10 * time.Second
	DefaultHookCommandTimeout = 30 * time.Second
)

// Events configures the events certfleet sends out ([events]; see
// docs/events.md).
type Events struct {
	// Hooks maps hook names to hooks ([events.hooks.NAME]).
	Hooks map[string]Hook
}

// Hook is one receiver of events. The package reads no file: the daemon
// reads SecretFile.
type Hook struct {
	// Type is HookWebhook, HookSocket or HookCommand.
	Type string
	// Types are the event types sent (certfleet.HookTypes); nil for all.
	Types []string
	// Certificates are shell patterns of the certificate names sent; nil
	// for all.
	Certificates []string
	// URL receives a webhook's POSTs; it may hold a secret and is never
	// printed.
	URL string
	// SecretFile holds a webhook's HMAC-SHA256 signing secret (absolute
	// path). Required for a webhook.
	SecretFile string
	// Socket is a socket hook's UNIX socket (absolute path); Ack makes
	// certfleet wait for the consumer's acknowledgement of each line.
	Socket string
	Ack    bool
	// Command is a command hook's argv (no shell).
	Command []string
	// Timeout bounds one delivery attempt. Default by type:
	// DefaultHookWebhookTimeout, DefaultHookSocketTimeout,
	// DefaultHookCommandTimeout.
	Timeout time.Duration
}

// HookNames returns the names of the hooks, sorted.
func (e Events) HookNames() []string { return slices.Sorted(maps.Keys(e.Hooks)) }

// events decodes [events].
func (d *decoder) events(top *table, cfg *Config) {
	t := d.subtable(top, "events")
	if t == nil {
		return
	}
	defer d.unknown(t, eventsKeys)
	hooks := d.subtable(t, "hooks")
	if hooks == nil {
		return
	}
	cfg.Events.Hooks = make(map[string]Hook)
	for _, name := range slices.Sorted(maps.Keys(hooks.m)) {
		ht := d.subtable(hooks, name)
		if ht == nil {
			continue
		}
		if err := certfleet.ValidateHookName(name); err != nil {
			d.problemf(ht.p, "%v", err)
			continue
		}
		if h, ok := d.hook(ht); ok {
			cfg.Events.Hooks[name] = h
		}
	}
}

// hook decodes one [events.hooks.NAME].
func (d *decoder) hook(t *table) (Hook, bool) {
	start := d.mark()
	defer d.unknown(t, hookKeys)
	var h Hook
	typ, p, ok := d.str(t, "type")
	switch {
	case !ok:
		d.problemf(p, "required: %q, %q or %q", HookWebhook, HookSocket, HookCommand)
	case typ == HookWebhook || typ == HookSocket || typ == HookCommand:
		h.Type = typ
	default:
		d.problemf(p, "unknown hook type %q (use %s, %s or %s)", typ, HookWebhook, HookSocket, HookCommand)
	}
	if list, paths, p, ok := d.strList(t, "types"); ok {
		if len(list) == 0 {
			d.problemf(p, "empty: list the event types to send (%s), or remove the key for all", strings.Join(certfleet.HookTypes, ", "))
		}
		h.Types = []string{}
		for i, s := range list {
			switch {
			case !slices.Contains(certfleet.HookTypes, s):
				d.problemf(paths[i], "unknown event type %q (use %s)", s, strings.Join(certfleet.HookTypes, ", "))
			case !slices.Contains(h.Types, s):
				h.Types = append(h.Types, s)
			}
		}
	}
	if list, paths, p, ok := d.strList(t, "certificates"); ok {
		if len(list) == 0 {
			d.problemf(p, "empty: list certificate name patterns, as in [\"web*\"], or remove the key for all")
		}
		for i, s := range list {
			if _, err := pathpkg.Match(s, ""); err != nil || s == "" {
				d.problemf(paths[i], "%q is not a name pattern (* matches any characters, ? one, [a-z] a class)", s)
				continue
			}
			h.Certificates = append(h.Certificates, s)
		}
	}
	// Each type's own keys; another type's key is a mistake worth naming.
	only := func(key, typ string) bool {
		_, p, ok := d.get(t, key)
		if ok && h.Type != "" && h.Type != typ {
			d.problemf(p, "%s is for hooks of type %q, not %q", key, typ, h.Type)
			return false
		}
		return ok
	}
	if only("url", HookWebhook) {
		if s, p, ok := d.str(t, "url"); ok {
			// The URL is never quoted: it may hold a secret.
			u, err := url.Parse(s)
			switch {
			case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
				d.problemf(p, "not an http:// or https:// URL with a host (the value is not shown: it may hold a secret)")
			case u.User != nil:
				d.problemf(p, "must not hold a user or password; the requests are signed with secret_file")
			default:
				h.URL = s
			}
		}
	}
	if only("secret_file", HookWebhook) {
		h.SecretFile = d.path(t, "secret_file")
	}
	if only("socket", HookSocket) {
		h.Socket = d.path(t, "socket")
	}
	if only("ack", HookSocket) {
		v, p, _ := d.get(t, "ack")
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		h.Ack = b
	}
	if only("command", HookCommand) {
		h.Command = d.alertCommand(t)
	}
	switch h.Type {
	case HookWebhook:
		h.Timeout = DefaultHookWebhookTimeout
		if h.URL == "" && !t.has("url") {
			d.problemf(t.p.key("url"), "required for a webhook: the https:// URL that receives the events")
		}
		if h.SecretFile == "" && !t.has("secret_file") {
			d.problemf(t.p.key("secret_file"), "required for a webhook: a file (mode 0600) holding the secret its requests are signed with (docs/events.md)")
		}
	case HookSocket:
		h.Timeout = DefaultHookSocketTimeout
		if h.Socket == "" && !t.has("socket") {
			d.problemf(t.p.key("socket"), "required for a socket hook: the UNIX socket the consumer listens on")
		}
	case HookCommand:
		h.Timeout = DefaultHookCommandTimeout
		if h.Command == nil && !t.has("command") {
			d.problemf(t.p.key("command"), "required for a command hook: the program and its arguments, as in [\"/usr/local/bin/on-event\"]")
		}
	}
	if v := d.positiveDuration(t, "timeout"); v > 0 {
		h.Timeout = v
	}
	return h, d.mark() == start
}

// has reports whether the table sets key.
func (t *table) has(key string) bool {
	_, ok := t.m[key]
	return ok
}
