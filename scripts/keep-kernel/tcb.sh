#!/usr/bin/env bash
# Counts the trusted code base of a built kernel tree (O= build directory):
#   - kernel text size: size(1) on vmlinux (Berkeley format text column)
#   - compiled source lines: the .c and .S files named by source_* in the
#     build's .o.cmd files, each counted once (wc -l)
#   - header lines those objects included (deps_*), each header once
#
#   scripts/keep-kernel/tcb.sh BUILDDIR
set -euo pipefail
build=${1:?usage: tcb.sh BUILDDIR}
build=$(cd "$build" && pwd)
[ -f "$build/vmlinux" ] || { echo "tcb.sh: $build/vmlinux not found (build the kernel first)" >&2; exit 1; }

text=$(size "$build/vmlinux" | awk 'NR==2 {print $1}')
echo "tcb.sh: vmlinux text $text bytes ($(awk -v t="$text" 'BEGIN {printf "%.2f", t/1048576}') MiB)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Paths in .o.cmd files are absolute or relative to the build directory.
find "$build" -name '*.o.cmd' -print0 | xargs -0 cat >"$tmp/all"
sed -n 's/^source_[^ ]* := //p' "$tmp/all" | grep -E '\.(c|S)$' | sort -u >"$tmp/sources"
# deps_* lists continue over lines ending in '\'; keep header paths only.
tr ' \\' '\n\n' <"$tmp/all" | grep -E '^[^$()]+\.h$' | sort -u >"$tmp/headers"

count() {
	local n=0 files=0 f
	while IFS= read -r f; do
		case "$f" in /*) ;; *) f=$build/$f ;; esac
		[ -f "$f" ] || continue
		n=$((n + $(wc -l <"$f")))
		files=$((files + 1))
	done <"$1"
	echo "$files $n"
}
read -r cfiles clines < <(count "$tmp/sources")
read -r hfiles hlines < <(count "$tmp/headers")
echo "tcb.sh: compiled .c/.S: $cfiles files, $clines lines"
echo "tcb.sh: headers included: $hfiles files, $hlines lines"
