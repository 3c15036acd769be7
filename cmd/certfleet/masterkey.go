package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/seal"
)

func cmdMasterKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "usage: certfleet master-key generate FILE"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "Usage: certfleet master-key generate FILE\n\n"+
			"Write a new random master key (32 bytes, base64) to FILE, created with mode\n"+
			"0600; an existing file is never overwritten. Point master_key_file at it\n"+
			"(see docs/keys-at-rest.md) and back it up apart from the database.")
		return nil
	}
	if len(args) != 2 || args[0] != "generate" {
		return &exitError{code: 2, err: errors.New(synopsis)}
	}
	key, err := seal.GenerateMasterKey()
	if err != nil {
		return err
	}
	defer clear(key)
	if err := seal.WriteMasterKeyFile(args[1], key); err != nil {
		return err
	}
	k, err := seal.NewLocalKey(key)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote master key %s to %s (mode 0600): back it up apart from the database\n", k.ID(), args[1])
	return nil
}

func cmdRotateMasterKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rotate-master-key", "-config FILE [-new NEWKEYFILE]", help("rotate-master-key"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	newFile := fs.String("new", "", "the new master key `file` (default: the config's master_key_file)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	cur, err := daemon.LoadKeys(cfg.MasterKey, getenv(daemon.MasterKeyEnv))
	if err != nil {
		return err
	}
	keys, err := daemon.RotationKeys(cur, *newFile)
	if err != nil {
		return err
	}
	if keys.KEK == nil {
		return &exitError{code: 2, err: errors.New("no master key to rotate to: give -new NEWKEYFILE (make one with: certfleet master-key generate FILE), or set master_key_file to the new key and previous_master_key_files to the old one")}
	}
	log := newLogger(stderr, cfg.Log)
	store, err := daemon.OpenStore(ctx, cfg.State, keys, log)
	if err != nil {
		return err
	}
	defer store.Close()
	res, err := daemon.Sealer(store).Rotate(ctx)
	if err != nil {
		return err
	}
	for _, r := range res.Rewrapped {
		fmt.Fprintf(stdout, "re-wrapped data key %s from %s to %s\n", r.DEKID, r.FromKEKID, res.KEKID)
	}
	if len(res.Rewrapped) == 0 {
		fmt.Fprintf(stdout, "nothing to do: the store's %d data key(s) are wrapped by %s already\n", res.DataKeys, res.KEKID)
	}
	target := cmp.Or(*newFile, cfg.MasterKey.File)
	fmt.Fprintf(stdout, "\nNow, in %s, set\n  master_key_file = %q\nand remove previous_master_key_files (or unset %s, or set it to the new key),\n"+
		"then restart the instances when convenient: running ones keep working meanwhile.\n"+
		"Keep the old key only as long as you keep database backups taken before now.\n", cfg.File, target, daemon.MasterKeyEnv)
	return nil
}
