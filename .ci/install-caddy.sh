#!/usr/bin/env bash
# Installs Caddy 2.6 from Debian's packages for the get_certificate
# benchmark (BENCHMARKS.md §14, internal/cmd/caddybench), unless caddy is
# already there.
set -euo pipefail
if command -v caddy >/dev/null 2>&1; then
	echo "caddy already installed: $(caddy version)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends caddy
# The package starts a system Caddy on port 80; the benchmark runs its own
# on loopback ports and does not need it.
$sudo systemctl disable --now caddy 2>/dev/null || true
caddy version
