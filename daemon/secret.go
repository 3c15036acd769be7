package daemon

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
)

// ResolveSecrets returns a copy of cfg in which every "store:NAME" secret
// (TSIG secrets, webhook passwords and bearer tokens, EAB MAC keys) is
// replaced by its value from st. A missing secret is an error naming the
// config entry and the command that stores it.
func ResolveSecrets(ctx context.Context, cfg *config.Config, st certfleet.SecretStore) (*config.Config, error) {
	if !cfg.HasSecretRefs() {
		return cfg, nil
	}
	out := cfg.Clone()
	err := out.ResolveSecrets(func(where, ref string) (string, error) {
		v, err := st.Secret(ctx, ref)
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
			// The whole command, as it must be typed for this config.
			staging := ""
			if cfg.Staging.State != "" && cfg.State == cfg.Staging.State { // test mode's own store
				staging = " -staging"
			}
			return "", fmt.Errorf("%s = \"%s%s\": no secret %q in the store; add it with `certfleet secret set -config %s%s %s` (the value on standard input)",
				where, certfleet.SecretRefPrefix, ref, ref, cfg.File, staging, ref)
		}
		if err != nil {
			return "", fmt.Errorf("%s = \"%s%s\": %w", where, certfleet.SecretRefPrefix, ref, err)
		}
		return string(v), nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
