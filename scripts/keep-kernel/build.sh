#!/usr/bin/env bash
# Builds the module-free Enarx Keep kernel from Debian's linux-source-6.12:
# `make tinyconfig` + keep.config, reproducibly (fixed build timestamp, user,
# host and version; no local-version suffix from any enclosing git tree).
#
#   scripts/keep-kernel/build.sh [OUTDIR]     (default: ~/.cache/enarx/keep-kernel)
#
# Needs: apt-get install linux-source-6.12 build-essential flex bison libelf-dev bc
# Result: OUTDIR/bzImage (and OUTDIR/build with vmlinux and the .o.cmd files
# that tcb.sh counts). Then build a Keep image with it (no modules needed):
#   go run ./cmd/enarx-keep-image -kernel OUTDIR/bzImage -o bin/keep-tailored
# Not part of `make test`: about 8 minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/enarx/keep-kernel}
tarball=${LINUX_SOURCE_TARBALL:-$(ls /usr/src/linux-source-6.12.tar.* 2>/dev/null | head -n1 || true)}
fragment=$here/keep.config

# Fixed identity: the kernel embeds these in its version string (uname -v).
export KBUILD_BUILD_TIMESTAMP=${KBUILD_BUILD_TIMESTAMP:-"Thu Jan  1 00:00:00 UTC 1970"}
export KBUILD_BUILD_USER=enarx
export KBUILD_BUILD_HOST=keep-kernel
export KBUILD_BUILD_VERSION=1
# An empty LOCALVERSION stops scripts/setlocalversion from appending "+".
export LOCALVERSION=
export ARCH=x86_64
export LC_ALL=C TZ=UTC

for tool in make gcc flex bison bc xz perl; do
	command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing; apt-get install build-essential flex bison bc xz-utils perl" >&2; exit 1; }
done
[ -e /usr/include/gelf.h ] || { echo "build.sh: libelf headers are missing; apt-get install libelf-dev" >&2; exit 1; }
[ -n "$tarball" ] && [ -f "$tarball" ] || { echo "build.sh: no /usr/src/linux-source-6.12.tar.*; apt-get install linux-source-6.12 (or set LINUX_SOURCE_TARBALL)" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/src
build=$out/build

# Fresh source and build trees each time: nothing from an earlier run leaks in.
rm -rf "$src" "$build"
mkdir -p "$src" "$build"
echo "build.sh: extracting $(basename "$tarball")"
tar -xf "$tarball" -C "$src" --strip-components=1

mk() { make -C "$src" O="$build" -s "$@"; }

mk tinyconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" >/dev/null
mk olddefconfig

# Kconfig silently drops options whose dependencies are not met: check that
# every line of the fragment made it into the final .config.
fail=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF -- "$line" "$build/.config" || { echo "build.sh: wanted '$line', .config has '$(grep -E "^(# )?${line%%=*}[= ]" "$build/.config" || echo absent)'" >&2; fail=1; }
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }; opt=${opt%% *}
		if grep -qE "^$opt=" "$build/.config"; then echo "build.sh: wanted $opt off, .config has '$(grep -E "^$opt=" "$build/.config")'" >&2; fail=1; fi
		;;
	esac
done <"$fragment"
[ "$fail" = 0 ] || exit 1

echo "build.sh: building bzImage with $(nproc) jobs"
start=$(date +%s)
mk -j"$(nproc)" bzImage
end=$(date +%s)

cp "$build/arch/x86/boot/bzImage" "$out/bzImage"
cp "$build/.config" "$out/config"
release=$(cat "$build/include/config/kernel.release")
echo "build.sh: release $release, built in $((end - start)) s"
echo "build.sh: $out/bzImage $(stat -c %s "$out/bzImage") bytes, sha256 $(sha256sum "$out/bzImage" | cut -d' ' -f1)"
echo "build.sh: $(grep -c '=y$' "$build/.config") options built in, $(grep -c '=m$' "$build/.config" || true) modules"
"$here/tcb.sh" "$build"
