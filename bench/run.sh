#!/usr/bin/env bash
# Runs every benchmark of the project and prints, for each, the ratio against
# the baseline measured in the same run (each benchmark alternates the
# measured path and its baseline; see the package's bench_test.go):
#
#   keep                plain wazero (cold/warm start, CPU), native Go copy, native Go TCP echo;
#                       Engine*: each engine against native Go and plain wasmtime-go
#                       (nbody, sieve, SHA-256, 1 GiB stdio, TCP echo), InterruptCost
#   keep/internal/engine  WazeroChecks: the module without the inserted interruption checks
#   bench/start         process wall time: hello (StartHello) on enarx nil/sandbox × wazero/wasmtime,
#                       nbody and sieve (ComputeCLI) on enarx nil × wazero/wasmtime,
#                       against plain wazero and wasmtime-go runners
#   identity/e2e        native Go TLS echo server (16 KiB messages)
#   steward             raw ECDSA sign+verify of this machine
#   attestation/snp     raw ECDSA P-384 verify
#   attestation/sgx     raw ECDSA P-256 verify
#   drawbridge/internal/httpapi   sha256 + disk write/read of the same bytes
#   drawbridge/client   sha256 + disk write/read of the same bytes
#   backend/sandbox     the nil backend (start-up, throughput, memory per Keep)
#
# Usage: bench/run.sh [package-regexp]   (e.g. bench/run.sh keep)
# With a C compiler (cgo) the packages marked "wasmtime" below are built with
# -tags wasmtime, so both engines and the plain wasmtime-go baselines run;
# ENGINES=wazero bench/run.sh runs the pure-Go build only.
# Output: the full `go test -bench` lines in bench/out/<pkg>.txt and, on stdout,
# every metric each benchmark reports (ratios such as ratio, keep/native,
# fetch/floor, and the absolute rates behind them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
filter=${1:-.}
out=bench/out
mkdir -p "$out"

# package ; -bench regexp ; -benchtime ; tags  (";" separates: the regexps use "|")
benches=(
	"./keep/;^Benchmark(Hello|SHA256|Sieve|Stdio1GiB|TCPEcho);3x;"
	"./keep/;^Benchmark(Engine|InterruptCost);3x;wasmtime"
	"./keep/internal/engine/;WazeroChecks;15x;"
	"./bench/start/;^Benchmark[SC];15x;wasmtime"
	"./identity/e2e/;TLSEcho;20000x"
	"./steward/;IssuanceRatio;2000x"
	"./attestation/snp/;SNPRatio;3x"
	"./attestation/snp/;SNPColdChain;3x"
	"./attestation/sgx/;Verify;2s"
	"./drawbridge/internal/httpapi/;.;10x"
	"./drawbridge/client/;PublishAndFetch64MB;10x"
	"./drawbridge/client/;FirstFetch64MB;10x"
	"./backend/sandbox/;SandboxVsNil;1x"
)

cgo=0
if [[ "${ENGINES:-}" != wazero ]] && command -v "$(go env CC)" >/dev/null 2>&1; then
	cgo=1
fi
for b in "${benches[@]}"; do
	IFS=';' read -r pkg re bt tags <<<"$b"
	if [[ "$tags" != "" && "$tags" != wasmtime ]]; then
		echo "bench/run.sh: malformed row: $b" >&2
		exit 2
	fi
	[[ "$pkg" =~ $filter ]] || continue
	name=${pkg#./}; name=${name%/}; name=${name//\//_}
	env=(CGO_ENABLED=0)
	flags=()
	if [[ "$tags" == wasmtime ]]; then
		name=$name-engines
		if [[ $cgo == 1 ]]; then
			env=(CGO_ENABLED=1)
			flags=(-tags wasmtime)
		fi
	fi
	echo "== $pkg (-bench '$re' -benchtime $bt ${flags[*]})"
	if ! env "${env[@]}" go test "${flags[@]}" -run '^$' -bench "$re" -benchtime "$bt" -timeout 60m "$pkg" >"$out/$name.txt" 2>&1; then
		echo "   FAILED: see $out/$name.txt"
		tail -5 "$out/$name.txt" | sed 's/^/   /'
		continue
	fi
	# Print each benchmark line's own metrics (not ns/op, B/op, allocs/op).
	awk '/^Benchmark/ {
		line = "   " $1 ":"
		shown = 0
		for (i = 3; i < NF; i += 2) {
			if ($(i+1) !~ /^(ns\/op|B\/op|allocs\/op)$/) { line = line " " $i " " $(i+1); shown = 1 }
		}
		if (shown) print line
	}' "$out/$name.txt"
done
