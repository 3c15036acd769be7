#!/usr/bin/env bash
# Installs OpenLDAP's slapd and the ldap-utils from Debian's packages, unless
# they are already there, for the tests that run their own slapd on a loopback
# port with their own configuration and data directories: the LDAP inventory
# source's end-to-end test and the LDAP write-back recipe of docs/events.md
# (hook TestLDAPWriteBackRecipe). The system slapd is not needed.
set -euo pipefail
if [ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null 2>&1; then
	echo "slapd already installed: $(dpkg-query -W -f='${Version}' slapd 2>/dev/null || echo unknown)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends slapd ldap-utils
# The package may start a system slapd on port 389; stop and disable it (the
# tests run their own). Without systemd, its init script is the way.
$sudo systemctl disable --now slapd 2>/dev/null || $sudo service slapd stop 2>/dev/null || true
test -x /usr/sbin/slapd
