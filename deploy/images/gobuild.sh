#!/bin/sh
# Reproducible static build of one enarx command, used by the Dockerfiles in
# this directory and by deploy/images' test (which builds twice, from a cold
# build cache, and compares SHA-256).
#
#   gobuild.sh ./cmd/steward /out/steward
#
# Pure Go (CGO_ENABLED=0: no libc, runs FROM scratch/distroless static),
# -trimpath (no build paths in the binary), -buildvcs=false (no VCS stamp,
# so a dirty tree or a missing .git does not change the output),
# -buildid= (no build-ID that varies with the build cache's action IDs) and
# -s -w (no symbol table or DWARF). The module versions are pinned by go.sum;
# the Go toolchain by the Dockerfile's base image (and go.mod's go line).
set -eu
if [ $# -ne 2 ]; then
	echo "usage: $0 PACKAGE OUTPUT" >&2
	exit 2
fi
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
exec go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$2" "$1"
