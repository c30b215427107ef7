# Quick start:
#   make demo   build enarx and run the hello example in a Keep (nil backend)
#   make test   run every test (what CI runs via .ci/run)
#
# Engines: the default build is pure Go (CGO_ENABLED=0) with the wazero
# engine only; `make build ENGINES=wasmtime` links wasmtime too (cgo, the
# static library shipped in the wasmtime-go module). docs/runtime.md#engines

GO        ?= go
BIN       := bin
WASM_ENV  := GOOS=wasip1 GOARCH=wasm
ENGINES   ?=
ifeq ($(ENGINES),wasmtime)
BUILD_ENV := CGO_ENABLED=1
BUILD_TAGS := -tags wasmtime
else
BUILD_ENV := CGO_ENABLED=0
BUILD_TAGS :=
endif

.PHONY: all build examples demo demo-tls test test-race test-static test-short lint fuzz-seeds bench deps clean keep-image

all: build examples

build:
	$(BUILD_ENV) $(GO) build $(BUILD_TAGS) -trimpath -o $(BIN)/ ./cmd/...

examples:
	@mkdir -p $(BIN)/examples
	@for d in examples/*/; do \
		n=$$(basename $$d); \
		if [ -f $$d/main.go ]; then \
			$(WASM_ENV) $(GO) build -o $(BIN)/examples/$$n.wasm ./$$d || exit 1; \
		fi; \
	done

demo: build examples
	./$(BIN)/enarx run --wasmcfgfile examples/hello/Enarx.toml $(BIN)/examples/hello.wasm

demo-tls: build examples
	./scripts/demo-tls.sh

deps:
	./scripts/install-deps.sh

# The microVM Keep image (kernel, initrd with /init, manifest) next to bin/enarx,
# where the kvm/sev backends look for it. docs/microvm-kernel.md
keep-image:
	$(GO) run ./cmd/enarx-keep-image -o $(BIN)/keep

# vet checks both builds, each with the flags of the test pass that runs it
# (static: pure Go; race: cgo with wasmtime), so the packages they compile
# are compiled once for both. The last vet: enarx builds for linux/arm64
# too (the sandbox has no seccomp filter there yet, docs/sandbox.md),
# tests included.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1)
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) build -o /dev/null ./...
	$(GO) vet -race -tags wasmtime ./...
	GOARCH=arm64 $(GO) vet ./...

# -race forces cgo, so the race pass is built with -tags wasmtime: every test
# that runs workloads runs them on both engines (wazero and wasmtime). The
# sandbox's, the microVM backend's and the Keep's tests run again in a
# static, wazero-only build (the default build), which also runs what they
# skip under -race (testutil.SkipUnderRace): Go-built modules on wazero,
# whose compiler the race detector slows ten times or more, and the
# microVM boots, whose enarx binary is built without -race anyway.
# The two passes run side by side (the microVM boots use one core, the race
# pass rarely both): each prints its results when it ends.
test: deps lint
	@echo "make test: the race pass (test-race) and the static pass (test-static) run side by side; each prints its results when it ends"
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-race test-static

test-race:
	$(GO) test -race -tags wasmtime -timeout 60m ./...

test-static:
	CGO_ENABLED=0 $(GO) test -timeout 30m ./backend/sandbox/ ./backend/microvm/ ./keep/...

test-short:
	$(GO) test -short ./...

bench: build examples
	./bench/run.sh

clean:
	rm -rf $(BIN)
