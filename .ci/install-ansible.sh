#!/usr/bin/env bash
# Installs Debian's ansible package for the test that decrypts certfleet
# export's Ansible Vault files with the real ansible-vault
# (export TestVaultDecryptedByAnsibleVault), unless it is already there.
set -euo pipefail
if command -v ansible-vault >/dev/null 2>&1; then
	echo "ansible-vault already installed: $(ansible-vault --version 2>/dev/null | sed -n 1p)"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends ansible
command -v ansible-vault >/dev/null
ansible-vault --version | sed -n 1p
