package config

// Settings of every table that writes files or runs commands ([defaults],
// [[certificate]], copy, [deploy], the agent's certificates): owner, group,
// key_mode and argv command lists.

import (
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// principal decodes owner or group: a user or group name, or a numeric ID.
func (d *decoder) principal(t *table, key string) (string, bool) {
	s, p, ok := d.str(t, key)
	if !ok {
		return "", false
	}
	if strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == ':' || r == 0x7f }) >= 0 {
		d.problemf(p, "%q is not a user or group name", s)
		return "", false
	}
	return s, true
}

func (d *decoder) keyMode(t *table) (fs.FileMode, bool) {
	v, p, ok := d.get(t, "key_mode")
	if !ok {
		return 0, false
	}
	var mode uint64
	switch x := v.(type) {
	case string:
		m, err := strconv.ParseUint(x, 8, 32)
		if err != nil {
			d.problemf(p, "%q is not an octal file mode; write it as \"0640\"", x)
			return 0, false
		}
		mode = m
	case int64:
		if x < 0 {
			d.problemf(p, "%d is not a file mode; write it as a string, as in \"0640\"", x)
			return 0, false
		}
		mode = uint64(x)
	default:
		d.problemf(p, "must be an octal file mode string, as in \"0640\", not %s", typeName(v))
		return 0, false
	}
	switch {
	case mode > 0o777:
		d.problemf(p, "%#o is not a permission mode (0 to 0777); write it as a string, as in \"0640\"", mode)
	case mode&0o007 != 0:
		d.problemf(p, "%#o lets every user on the host read or change the private key; use 0600 or 0640", mode)
	default:
		return fs.FileMode(mode), true
	}
	return 0, false
}

func (d *decoder) commands(t *table) ([][]string, bool) { return d.commandsAt(t, "commands") }

// commandsAt decodes a list of argv lists at key (commands, prepare, cleanup).
func (d *decoder) commandsAt(t *table, key string) ([][]string, bool) {
	v, p, ok := d.get(t, key)
	if !ok {
		return nil, false
	}
	const how = `a list of argv lists, as in [["systemctl", "reload", "nginx"]] (commands run without a shell)`
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be %s, not %s", how, typeName(v))
		return nil, false
	}
	start := d.mark()
	cmds := make([][]string, 0, len(arr))
	for i, e := range arr {
		ep := p.index(i)
		argvAny, ok := asArray(e)
		if !ok {
			d.problemf(ep, "must be an argv list, not %s: commands is %s", typeName(e), how)
			continue
		}
		if len(argvAny) == 0 {
			d.problemf(ep, "empty command: give the program and its arguments, as in [\"systemctl\", \"reload\", \"nginx\"]")
			continue
		}
		argv := make([]string, 0, len(argvAny))
		for j, a := range argvAny {
			s, ok := a.(string)
			if !ok {
				d.problemf(ep.index(j), "must be a string, not %s", typeName(a))
				continue
			}
			if strings.ContainsRune(s, 0) {
				d.problemf(ep.index(j), "argument contains a NUL byte")
				continue
			}
			argv = append(argv, s)
		}
		if len(argv) > 0 && strings.TrimSpace(argv[0]) == "" {
			d.problemf(ep.index(0), "the program name is empty")
		}
		cmds = append(cmds, argv)
	}
	return cmds, d.mark() == start
}

func cloneCommands(cmds [][]string) [][]string {
	if cmds == nil {
		return nil
	}
	out := make([][]string, len(cmds))
	for i, c := range cmds {
		out[i] = slices.Clone(c)
	}
	return out
}
