package config

// [defaults]: the settings every [[certificate]] inherits, and the decoding
// of key_types and challenge, which both tables accept.

import (
	"io/fs"

	"github.com/certfleet/certfleet"
)

var defaultsKeys = []string{"key_types", "challenge", "webroot", "dns_provider", "output_dir", "owner", "group", "key_mode", "commands", "copy", "prepare", "prepare_helpers", "cleanup"}

// certDefaults are the decoded [defaults]; clean is false when any of them
// had a problem, so that certificates inheriting them skip the cross-checks
// that would only repeat it.
type certDefaults struct {
	keyTypes     []certfleet.KeyType
	challenge    certfleet.ChallengeType
	webroot      string
	dnsProvider  string
	outputDir    string
	owner, group string
	keyMode      fs.FileMode
	commands     [][]string
	copies       []Copy
	prepare      [][]string
	helpers      []Helper
	cleanup      [][]string
	clean        bool
}

func (d *decoder) defaults(t *table) certDefaults {
	return d.defaultsOver(certDefaults{
		keyTypes:  []certfleet.KeyType{DefaultKeyType},
		challenge: DefaultChallenge,
		outputDir: DefaultOutputDir,
		keyMode:   DefaultKeyMode,
		clean:     true,
	}, t)
}

// defaultsOver decodes a table of defaultsKeys over defs: [defaults] over
// the built-in defaults, an inventory source's defaults over [defaults].
func (d *decoder) defaultsOver(defs certDefaults, t *table) certDefaults {
	if t == nil {
		return defs
	}
	start := d.mark()
	if kts, ok := d.keyTypes(t); ok {
		defs.keyTypes = kts
	}
	if ct, _, ok := d.challenge(t); ok {
		defs.challenge = ct
	}
	if s, p, ok := d.str(t, "webroot"); ok && s != "" {
		defs.webroot, _ = d.abs(p, s)
	}
	if s, _, ok := d.str(t, "dns_provider"); ok {
		defs.dnsProvider = s
	}
	if s, p, ok := d.str(t, "output_dir"); ok {
		defs.outputDir = ""
		if s != "" {
			defs.outputDir, _ = d.abs(p, s)
		}
	}
	if s, ok := d.principal(t, "owner"); ok {
		defs.owner = s
	}
	if s, ok := d.principal(t, "group"); ok {
		defs.group = s
	}
	if m, ok := d.keyMode(t); ok {
		defs.keyMode = m
	}
	if cmds, ok := d.commands(t); ok {
		defs.commands = cmds
	}
	if cps, ok := d.copies(t); ok {
		defs.copies = cps
	}
	if cmds, ok := d.commandsAt(t, "prepare"); ok {
		defs.prepare = cmds
	}
	if hs, ok := d.helpers(t); ok {
		defs.helpers = hs
	}
	if cmds, ok := d.commandsAt(t, "cleanup"); ok {
		defs.cleanup = cmds
	}
	d.unknown(t, defaultsKeys)
	defs.clean = defs.clean && d.mark() == start
	return defs
}

func (d *decoder) keyTypes(t *table) ([]certfleet.KeyType, bool) {
	start := d.mark()
	list, paths, p, ok := d.strList(t, "key_types")
	if !ok {
		return nil, false
	}
	var kts []certfleet.KeyType
	for i, s := range list {
		kt, err := certfleet.ParseKeyType(s)
		if err != nil {
			d.problemf(paths[i], "%v", err)
			continue
		}
		kts = append(kts, kt)
	}
	if d.mark() != start {
		return nil, false
	}
	switch {
	case len(list) == 0 || len(list) > 2:
		d.problemf(p, "give one key type, or two of different families (one RSA, one ECDSA) for dual certificates")
	case len(kts) == 2 && kts[0].Family() == kts[1].Family():
		d.problemf(p, "dual certificates need one RSA and one ECDSA key type, not %s and %s", kts[0], kts[1])
	default:
		return kts, true
	}
	return nil, false
}

func (d *decoder) challenge(t *table) (certfleet.ChallengeType, path, bool) {
	s, p, ok := d.str(t, "challenge")
	if !ok {
		return "", p, false
	}
	ct, err := certfleet.ParseChallengeType(s)
	if err != nil {
		d.problemf(p, "%v", err)
		return "", p, false
	}
	return ct, p, true
}
