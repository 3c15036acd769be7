package certfleet

import (
	"slices"
	"strings"
)

// SecretEnv lists the environment variables certfleet reads that hold a
// secret. The commands it runs (deploy and reload commands, prepare and
// cleanup hooks, dns-01 exec providers, alert commands) never inherit them:
// a reload script has no business with the master key.
var SecretEnv = []string{"CERTFLEET_MASTER_KEY"}

// ChildEnv returns environ (os.Environ() of the caller) without the
// variables of SecretEnv, followed by extra: the environment of a command
// certfleet runs.
func ChildEnv(environ []string, extra ...string) []string {
	out := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(SecretEnv, name) {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}
