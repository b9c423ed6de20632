# Rampart. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
TOOLS_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rampart/tools/bin
export TOOLS_DIR
export PATH := $(TOOLS_DIR):/usr/sbin:/sbin:$(PATH)
CMDS := $(notdir $(wildcard cmd/*))
TEST_TIMEOUT ?= 60m
BENCH ?= .

.PHONY: help build deps test unit demo bench lint cross clean

help: ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build every binary of cmd/ into ./bin, plus pki-host (the pki client verbs without the CA server)
	@mkdir -p bin
	$(GO) build -trimpath -buildvcs=auto -o bin/ $(addprefix ./cmd/,$(CMDS))
	$(GO) build -trimpath -buildvcs=auto -tags pkiclient -o bin/pki-host ./cmd/pki

deps: ## install the Debian packages and pinned Go tools the tests need
	test/install.sh

test: deps ## unit and integration tests against real peers (root installs what is missing)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

unit: ## tests that need no root and no peers (integration tests skip)
	REQUIRE_INTEGRATION= $(GO) test -short ./...

demo: build ## run every piece on loopback with embedded defaults; Ctrl-C stops
	examples/demo/demo.sh

bench: deps build ## benchmarks; results in bench.out
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout 60m ./... | tee bench.out

lint: ## gofmt, go vet, staticcheck
	@test -x $(TOOLS_DIR)/staticcheck || test/install.sh
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=openbsd $(GO) vet $(addprefix ./cmd/,$(CMDS)) ./firewall/... ./pkg/...
	staticcheck ./...

cross: ## build every binary for OpenBSD and FreeBSD (amd64) into bin/<os>/
	@for os in openbsd freebsd; do \
		echo "GOOS=$$os: $(CMDS)"; \
		mkdir -p bin/$$os; \
		GOOS=$$os GOARCH=amd64 $(GO) build -trimpath -o bin/$$os/ $(addprefix ./cmd/,$(CMDS)) || exit 1; \
	done

clean:
	rm -rf bin bench.out
