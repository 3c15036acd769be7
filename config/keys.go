package config

// MasterKey locates the master key that encrypts the private keys in the
// store (top-level keys master_key_file and previous_master_key_files; see
// docs/keys-at-rest.md). The files are only named here: cmd reads them
// (seal.LoadMasterKeyFile, which refuses a file others can read), and the
// environment variable CERTFLEET_MASTER_KEY overrides File.
type MasterKey struct {
	// File is the master key file, an absolute path (relative paths are
	// resolved against the config file's directory); "" for none.
	File string
	// PreviousFiles are older master key files, accepted to unwrap the
	// data key while a rotation is under way (certfleet
	// rotate-master-key).
	PreviousFiles []string
}

// masterKey decodes master_key_file and previous_master_key_files.
func (d *decoder) masterKey(top *table, cfg *Config) {
	if s, p, ok := d.str(top, "master_key_file"); ok {
		if s == "" {
			d.problemf(p, "must name a file; remove the key to store private keys unencrypted")
		} else if abs, ok := d.abs(p, s); ok {
			cfg.MasterKey.File = abs
		}
	}
	list, paths, p, ok := d.strList(top, "previous_master_key_files")
	if !ok {
		return
	}
	for i, s := range list {
		if s == "" {
			d.problemf(paths[i], "must name a file")
			continue
		}
		if abs, ok := d.abs(paths[i], s); ok {
			cfg.MasterKey.PreviousFiles = append(cfg.MasterKey.PreviousFiles, abs)
		}
	}
	if len(cfg.MasterKey.PreviousFiles) > 0 && cfg.MasterKey.File == "" {
		d.problemf(p, "previous master keys are only for a rotation: set master_key_file to the new master key as well")
	}
}
