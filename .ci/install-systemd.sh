#!/usr/bin/env bash
# Installs systemd-analyze (Debian's systemd package) for the test that
# verifies the shipped units (packaging/systemd), unless it is there. No
# systemd needs to run: verify only reads the unit files.
set -euo pipefail
if command -v systemd-analyze >/dev/null 2>&1; then
	echo "systemd-analyze already installed: $(systemd-analyze --version | sed -n 1p)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends systemd
command -v systemd-analyze
