#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine with Go.
# Idempotent; each step checks before installing.
set -euo pipefail

need_apt=()
# python3-cryptography: an independent CSR implementation for Steward interop tests.
if ! /usr/bin/python3 -c 'import cryptography' 2>/dev/null; then need_apt+=(python3-cryptography); fi
# QEMU and Debian's 6.12 cloud kernel: the microVM Keep tests boot real Keeps
# (under TCG where there is no /dev/kvm; see docs/microvm.md).
if ! command -v qemu-system-x86_64 >/dev/null; then need_apt+=(qemu-system-x86); fi
if ! compgen -G '/boot/vmlinuz-6.12.*-cloud-amd64' >/dev/null; then need_apt+=(linux-image-6.12-cloud-amd64); fi
# GNU cpio: an independent reader that checks the Keep image's initrd.
if ! command -v cpio >/dev/null; then need_apt+=(cpio); fi
# containerd (1.6 on Debian 12): the shim's tests run Keeps under a real daemon.
if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then need_apt+=(containerd); fi

if [ ${#need_apt[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

go mod download
