// Package systemd holds certfleet's systemd units (serve, agent, and the
// issue pass with its timer) and its sysusers.d entry, as files to install
// and embedded in Units for installers and tests. See docs/systemd.md.
//
// It holds no code that runs with certfleet: the units start the binary
// (cmd/certfleet); nothing here talks to systemd.
package systemd

import "embed"

// Units are the unit files and the sysusers.d entry, by file name.
//
//go:embed *.service *.timer *.sysusers
var Units embed.FS
