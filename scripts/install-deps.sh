#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine with Go.
# Idempotent; each step checks before installing.
set -euo pipefail

need_apt=()
# python3-cryptography: an independent CSR implementation for Steward interop tests.
if ! /usr/bin/python3 -c 'import cryptography' 2>/dev/null; then need_apt+=(python3-cryptography); fi

if [ ${#need_apt[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

go mod download
