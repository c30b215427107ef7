#!/usr/bin/env bash
# tcb-report.sh: what code runs inside a Keep (docs/runtime.md#engines).
#
# Lists the Go packages linked into the Keep runtime (package keep, the
# sandbox Keep's confinement in backend/sandbox, and everything they
# import), grouped by where they come from — this project, each engine, the
# Go standard library and runtime, other modules — with their lines of Go
# and C (non-test files, blank lines included; C only in a cgo build: the
# psx package's thread broadcast), and the machine code each engine adds to
# a binary. Run it from the repository root:
#
#   scripts/tcb-report.sh            # the pure-Go build (wazero) and, with cgo, -tags wasmtime
#
# The Keep also runs the host kernel's system calls (sandbox, nil) or the
# microVM's Linux kernel (docs/microvm-kernel.md), which this does not count.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

module=$(go list -m)
report() { # $1: build flags (may be empty), $2: label, $3: CGO_ENABLED
	local flags=$1 label=$2 cgo_enabled=$3
	echo "### Keep runtime, $label"
	echo
	echo "| origin | packages | lines of Go (and C) |"
	echo "|---|---:|---:|"
	# ImportPath, module path ("" for std), dir, files.
	CGO_ENABLED=$cgo_enabled go list $flags -deps -f '{{.ImportPath}}|{{with .Module}}{{.Path}}{{end}}|{{.Dir}}|{{join .GoFiles " "}} {{join .CgoFiles " "}} {{join .CFiles " "}}' ./keep ./backend/sandbox |
		while IFS='|' read -r pkg mod dir files; do
			case "$mod" in
			"") if [[ $pkg == runtime || $pkg == runtime/* || $pkg == internal/runtime/* ]]; then origin="Go runtime"; else origin="Go standard library"; fi ;;
			"$module") origin="this project" ;;
			github.com/tetratelabs/wazero) origin="wazero (Go)" ;;
			github.com/bytecodealliance/wasmtime-go*) origin="wasmtime-go (Go bindings)" ;;
			*) origin="other: $mod" ;;
			esac
			n=0
			for f in $files; do
				n=$((n + $(wc -l <"$dir/$f")))
			done
			echo "$origin|$n"
		done |
		awk -F'|' '{pk[$1]++; ln[$1]+=$2} END {for (o in pk) printf "| %s | %d | %d |\n", o, pk[o], ln[o]}' | sort
	echo
}

report "" "pure-Go build (CGO_ENABLED=0: wazero only)" 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$tmp/enarx-purego" ./cmd/enarx
cgo=0
if CGO_ENABLED=1 go build -trimpath -tags wasmtime -o "$tmp/enarx-wasmtime" ./cmd/enarx 2>/dev/null; then
	cgo=1
	report "-tags wasmtime" "build with -tags wasmtime (wazero and wasmtime)" 1
fi

echo "### Machine code"
echo
echo "| binary | text bytes | data+bss bytes | file bytes |"
echo "|---|---:|---:|---:|"
for b in "$tmp"/enarx-*; do
	read -r text data bss _ < <(size "$b" | tail -1)
	echo "| $(basename "$b") | $text | $((data + bss)) | $(stat -c %s "$b") |"
done
echo
if [[ $cgo == 1 ]]; then
	lib=$(go list -tags wasmtime -f '{{.Dir}}' github.com/bytecodealliance/wasmtime-go/v44)/build/linux-x86_64/libwasmtime.a
	if [[ -f $lib ]]; then
		echo "wasmtime's prebuilt static library (Rust: Cranelift, the runtime, its WASI, all of it; the"
		echo "linker keeps only what the bindings reach): $(stat -c %s "$lib") bytes as an archive."
		echo "The machine code it adds to enarx is the text difference between the two binaries above."
	fi
	echo
	echo "Shared libraries the wasmtime build loads (ldd):"
	ldd "$tmp/enarx-wasmtime" | sed 's/^/    /'
fi
