package lego

import "net/http"

// KeysRead builds a provider of type typ from m and returns the keys the
// builder looked at (whether or not lego accepted them).
func KeysRead(typ string, m map[string]string) (map[string]bool, bool) {
	b, ok := builders[typ]
	if !ok {
		return nil, false
	}
	read := map[string]bool{}
	b(keys{m: m, hc: http.DefaultClient, read: read})
	return read, true
}

// Types returns the types New knows.
func Types() []string {
	var out []string
	for t := range builders {
		out = append(out, t)
	}
	return out
}
