package config

// [[deploy.action]]: commands keyed on identifiers, run once per batch.

import (
	"fmt"
	"strings"

	"github.com/certfleet/certfleet"
)

var actionKeys = []string{"name", "identifiers", "unmatched", "commands"}

// Action is one [[deploy.action]]: commands run once per batch of changed
// certificates when any of them has an identifier the action matches
// (lematt's override sections), after the certificates' own commands and
// before the [deploy] commands.
type Action struct {
	// Name names the action in logs and in CERTFLEET_ACTION. Default
	// "action N", N its position from 1.
	Name string
	// Identifiers are identifiers ("mail.example.org", normalised like a
	// certificate's) or patterns in which "*" stands for any run of
	// characters, dots included ("*.example.org"). Required unless
	// Unmatched.
	Identifiers []string
	// Unmatched, instead of Identifiers, makes the action run for the
	// changed certificates with an identifier no other action matches
	// (lematt's [default]). At most one action may set it. Default false.
	Unmatched bool
	// Commands run in order, without a shell; the first failure ends the
	// action. Required.
	Commands [][]string
}

// actions decodes [[deploy.action]].
func (d *decoder) actions(t *table, cfg *Config) {
	v, p, ok := d.get(t, "action")
	if !ok {
		return
	}
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be an array of tables: write each action under its own [[deploy.action]] header")
		return
	}
	unmatched := -1
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			d.problemf(p.index(i), "must be a table, not %s", typeName(e))
			continue
		}
		at := newTable(m, p.index(i))
		a := d.action(at, i)
		if a.Unmatched {
			if unmatched >= 0 {
				d.problemf(at.p.key("unmatched"), "deploy.action[%d] already runs for the unmatched identifiers; merge the two", unmatched)
			}
			unmatched = i
		}
		cfg.Deploy.Actions = append(cfg.Deploy.Actions, a)
	}
}

func (d *decoder) action(t *table, index int) Action {
	defer d.unknown(t, actionKeys)
	a := Action{Name: fmt.Sprintf("action %d", index+1)}
	if s, p, ok := d.str(t, "name"); ok {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			d.problemf(p, "%q is not a name: give a word or two for the logs, as in \"mail servers\"", s)
		} else {
			a.Name = s
		}
	}
	if v, p, ok := d.get(t, "unmatched"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		a.Unmatched = b
	}
	list, paths, p, ok := d.strList(t, "identifiers")
	switch {
	case ok && a.Unmatched:
		d.problemf(p, "an action with unmatched = true runs for the identifiers no other action names; remove identifiers, or unmatched")
	case ok && len(list) == 0:
		d.problemf(p, "empty: list the identifiers or patterns whose change runs the action, as in [\"mail.example.org\", \"*.dev.example.org\"]")
	case !ok && !a.Unmatched:
		if _, present := t.m["identifiers"]; !present {
			d.problemf(p, "required: the identifiers or patterns whose change runs the action, as in [\"mail.example.org\", \"*.dev.example.org\"] (or unmatched = true)")
		}
	}
	for i, s := range list {
		if pat, ok := d.identifierPattern(paths[i], s); ok {
			a.Identifiers = append(a.Identifiers, pat)
		}
	}
	if cmds, ok := d.commands(t); ok && len(cmds) > 0 {
		a.Commands = cmds
	} else if _, present := t.m["commands"]; !present || ok {
		d.problemf(t.p.key("commands"), "required: the commands to run, as in [[\"ssh\", \"mail1\", \"systemctl reload postfix\"]]")
	}
	return a
}

// identifierPattern checks one entry of an action's identifiers: an
// identifier (normalised as in a certificate: lower case, IDNs in their
// ASCII form) or a pattern of ASCII letters, digits, '-', '.', ':' and '*'.
func (d *decoder) identifierPattern(p path, s string) (string, bool) {
	if !strings.Contains(s, "*") || strings.HasPrefix(s, "*.") && strings.Count(s, "*") == 1 {
		if id, err := certfleet.ParseIdentifier(s); err == nil {
			return id.Value, true
		} else if !strings.Contains(s, "*") {
			d.problemf(p, "%v", err)
			return "", false
		}
	}
	s = strings.ToLower(s)
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == ':' || r == '*') {
			d.problemf(p, "%q is not an identifier pattern: use letters, digits, '-', '.' and '*' (write internationalised names in their xn-- form)", s)
			return "", false
		}
	}
	return s, true
}
