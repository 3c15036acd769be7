#!/usr/bin/env bash
# Installs PowerDNS Authoritative with its sqlite3 backend from Debian's
# packages for the end-to-end test of the lego-based dns-01 providers
# (solver/dns01/lego TestPowerDNSEndToEnd), unless it is already there.
# The test runs its own pdns_server on loopback ports.
set -euo pipefail
schema=/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql
if [ -x /usr/sbin/pdns_server ] && [ -f "$schema" ]; then
	echo "pdns_server already installed: $(dpkg-query -W -f='${Version}' pdns-server 2>/dev/null || echo unknown)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends pdns-server pdns-backend-sqlite3
# The package may start a system pdns on port 53; the test does not need it.
$sudo systemctl disable --now pdns 2>/dev/null || true
test -f "$schema"
/usr/sbin/pdns_server --version 2>&1 | sed -n 1p || true
