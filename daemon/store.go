package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/sqlite"
)

// MasterKeyEnv names the environment variable that holds a master key in
// its text form; it overrides the config's master_key_file. This package
// never reads it: cmd does, and passes the value in (Options.MasterKey,
// LoadKeys).
const MasterKeyEnv = "CERTFLEET_MASTER_KEY"

// noMasterKeyWarning is logged at start when the store keeps private keys
// unencrypted.
const noMasterKeyWarning = "private keys are stored unencrypted: set master_key_file (or CERTFLEET_MASTER_KEY) — see docs/keys-at-rest.md"

// Keys are the master keys a store is opened with.
type Keys struct {
	// KEK wraps the store's data key; nil when no master key is
	// configured (private keys are then stored unencrypted).
	KEK seal.KeyWrapper
	// Previous are older master keys, accepted during a rotation.
	Previous []seal.KeyWrapper
	// Hint says where the master key is expected, for errors.
	Hint string
}

// keyHint says where certfleet looks for the master key.
func keyHint(mk config.MasterKey) string {
	if mk.File != "" {
		return "file: " + mk.File + ", or env: " + MasterKeyEnv
	}
	return "set master_key_file in the config, or the environment variable " + MasterKeyEnv + "; see docs/keys-at-rest.md"
}

// LoadKeys reads the configured master key and the previous ones. env is
// the value of MasterKeyEnv ("" when unset), which overrides mk.File.
// Errors name the file or variable, never a key.
func LoadKeys(mk config.MasterKey, env string) (Keys, error) {
	keys := Keys{Hint: keyHint(mk)}
	if env != "" {
		k, err := seal.LocalKeyFromText(env, "environment variable "+MasterKeyEnv)
		if err != nil {
			return keys, err
		}
		keys.KEK = k
	} else if mk.File != "" {
		k, err := seal.LoadMasterKeyFile(mk.File)
		if err != nil {
			return keys, fmt.Errorf("%w (config key master_key_file)", err)
		}
		keys.KEK = k
	}
	for _, f := range mk.PreviousFiles {
		k, err := seal.LoadMasterKeyFile(f)
		if err != nil {
			return keys, fmt.Errorf("%w (config key previous_master_key_files)", err)
		}
		keys.Previous = append(keys.Previous, k)
	}
	return keys, nil
}

// RotationKeys returns the keys to open a store with to re-wrap its data
// key under the master key in newFile: that key, with cur's key and
// previous ones as previous keys. With newFile "", cur itself: the data key
// goes to the configured key, unwrapped with the previous ones (the
// rotation procedure of docs/keys-at-rest.md).
func RotationKeys(cur Keys, newFile string) (Keys, error) {
	if newFile == "" {
		return cur, nil
	}
	next, err := seal.LoadMasterKeyFile(newFile)
	if err != nil {
		return Keys{}, err
	}
	keys := Keys{KEK: next, Hint: cur.Hint}
	if cur.KEK != nil {
		keys.Previous = append(keys.Previous, cur.KEK)
	}
	keys.Previous = append(keys.Previous, cur.Previous...)
	return keys, nil
}

// Sealer returns the Sealer of an open store, nil without a master key.
func Sealer(s any) *seal.Sealer {
	if x, ok := s.(interface{ Sealer() *seal.Sealer }); ok {
		return x.Sealer()
	}
	return nil
}

// isPostgres reports whether the config's state names a PostgreSQL
// database (a postgres:// or postgresql:// URL) rather than a SQLite file.
func isPostgres(state string) bool {
	l := strings.ToLower(state)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// OpenStore opens (creating or migrating as needed) the store a config's
// state names: a PostgreSQL database for a postgres:// or postgresql://
// URL, else a SQLite file, whose directory is created (mode 0700). With a
// master key (keys.KEK) private keys are encrypted at rest, and keys
// stored in plaintext before the master key was set are sealed at open
// (sealStoredKeys; a warning with their count while any is left); without
// one the store opens only if it holds no encrypted key, and a warning is
// logged. An unreachable PostgreSQL server fails with
// certfleet.EUNAVAILABLE and says what to check. A nil log discards.
func OpenStore(ctx context.Context, state string, keys Keys, log *slog.Logger) (certfleet.Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := openStore(ctx, state, log, keys)
	if err != nil {
		return s, err
	}
	if keys.KEK == nil {
		log.Warn(noMasterKeyWarning)
	} else {
		sealStoredKeys(ctx, s, log)
	}
	return s, nil
}

func openStore(ctx context.Context, state string, log *slog.Logger, keys Keys) (certfleet.Store, error) {
	if isPostgres(state) {
		return openPostgres(ctx, state, log, keys)
	}
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory for %s: %w", state, err)
	}
	s := sqlite.New(state)
	s.Logger = log
	s.KEK, s.PreviousKEKs, s.MasterKeyHint = keys.KEK, keys.Previous, keys.Hint
	if err := s.Open(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", state, err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string, log *slog.Logger, keys Keys) (*postgres.Store, error) {
	cfg, err := postgres.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", RedactDSN(dsn), err)
	}
	s := postgres.New(dsn)
	s.Logger = log
	s.KEK, s.PreviousKEKs, s.MasterKeyHint = keys.KEK, keys.Previous, keys.Hint
	if err := s.Open(ctx); err != nil {
		if certfleet.ErrorCode(err) == certfleet.EUNAVAILABLE {
			return nil, fmt.Errorf("%w\n"+
				"certfleet cannot reach its PostgreSQL database at %s: check that the server runs "+
				"(pg_isready -h %s -p %d), that it accepts connections from this host "+
				"(listen_addresses, pg_hba.conf, firewalls), and the host, port, user, password "+
				"and database of the state URL in the config", err, postgres.Server(cfg), cfg.ConnConfig.Host, cfg.ConnConfig.Port)
		}
		return nil, fmt.Errorf("open PostgreSQL store %s: %w", postgres.Server(cfg), err)
	}
	return s, nil
}

// RedactDSN hides a password in a database URL, for messages.
func RedactDSN(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at > 0 {
		if scheme := strings.Index(dsn, "://"); scheme > 0 && scheme < at {
			return dsn[:scheme+3] + "…" + dsn[at:]
		}
	}
	return dsn
}

// NoStoreYet tells w, for a command that only reads (certfleet status),
// that the configuration's SQLite store does not exist yet, and reports
// whether it did: a store is not created by looking at it. It is false
// when the store exists or is PostgreSQL.
func NoStoreYet(cfg *config.Config, w io.Writer) bool {
	if strings.HasPrefix(cfg.State, "postgres://") || strings.HasPrefix(cfg.State, "postgresql://") {
		return false
	}
	if _, err := os.Stat(cfg.State); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	fmt.Fprintf(w, "no store yet at %s: nothing was issued with this configuration (certfleet issue or serve creates it)\n", cfg.State)
	return true
}
