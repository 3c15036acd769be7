#!/usr/bin/env bash
# Installs BIND 9 from Debian's packages for the dns-01 interop test
# (cmd/certfleet TestBIND9Interop), unless named is already there.
set -euo pipefail
if command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ]; then
	echo "named already installed: $(/usr/sbin/named -v 2>/dev/null || named -v)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends bind9 bind9-utils bind9-dnsutils
# The package starts a system named on port 53; the test runs its own on a
# high loopback port and does not need it.
$sudo systemctl disable --now named 2>/dev/null || true
/usr/sbin/named -v
