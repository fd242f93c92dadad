# Switchyard: `make demo` runs the main job, `make test` passes the tests.
GO       ?= go
# The approved toolchain: go.mod names it, and the go command fetches it from
# the Go module proxy on first use (this machine's own Go may be older).
export GOTOOLCHAIN ?= go1.27.3
BIN      := bin/switchyard
PKGS     := ./...
FUZZTIME ?= 5s
# The version and commit `switchyard --version` prints (and the agents and the
# edge report), from git: `git describe --tags --dirty`, or v0.0.0-COMMITS-gHASH
# before the first tag (a version posture rules compare as 0.0.0, not a hash's
# leading digits); a build without them falls back to Go's build info.
VERSION  ?= $(shell git describe --tags --dirty 2>/dev/null || \
              { n=$$(git rev-list --count HEAD 2>/dev/null) && echo v0.0.0-$$n-g$$(git describe --always --dirty); } || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DOCS     := bin/docs

.PHONY: all build docs deb deb-check test unit fuzz lint vulncheck bench demo demo-cluster clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/switchyard

# docs writes the shell completions and the man page, generated from the CLI's
# command tree, where the package takes them: $(DOCS)/completion/{switchyard.bash,
# _switchyard,switchyard.fish} and $(DOCS)/man/switchyard.1.gz.
docs: build
	mkdir -p $(DOCS)/completion $(DOCS)/man
	$(BIN) completion bash > $(DOCS)/completion/switchyard.bash
	$(BIN) completion zsh > $(DOCS)/completion/_switchyard
	$(BIN) completion fish > $(DOCS)/completion/switchyard.fish
	$(BIN) man > $(DOCS)/man/switchyard.1
	gzip -9nf $(DOCS)/man/switchyard.1

# deb builds bin/deb/switchyard_VERSION_{amd64,arm64}.deb with nfpm: the
# binary, hardened systemd units, /etc/switchyard/*.env, sysctl.d, completions
# and the man page (see deploy/deb/nfpm.yaml and scripts/deb.sh).
deb: docs
	GO=$(GO) VERSION=$(VERSION) COMMIT=$(COMMIT) BIN=$(BIN) DOCS=$(DOCS) ./scripts/deb.sh

# deb-check (root): make deb, then dpkg -i, check files, user and units
# (systemd-analyze verify and security), dpkg -P, check nothing is left.
deb-check: deb
	./scripts/deb-check.sh

# test: lint, every unit/integration/e2e test under the race detector, then a
# short run of every fuzz target. Network tests need root (CI runs as root).
test: lint vulncheck unit fuzz

# unit keeps what tests save for people to look at (the console's browser
# screenshots) under bin/test-output/_artifacts/PACKAGE/TEST/.
unit:
	mkdir -p bin/test-output
	$(GO) test -race -count=1 -timeout 20m -artifacts -outputdir $(CURDIR)/bin/test-output $(PKGS)

# fuzz runs each fuzz target for FUZZTIME (longer by hand: make fuzz FUZZTIME=5m).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags netbench ./bench

# vulncheck runs govulncheck against a database built offline from the
# golang.org/x/vulndb module.
vulncheck:
	GO=$(GO) ./scripts/vulncheck.sh

# bench runs every Go benchmark, then (as root) the network-namespace lab that
# compares Switchyard with wireguard-go and kernel forwarding in the same run,
# prints ratios and targets, and writes bin/bench/results.json. Knobs:
# BENCH_QUICK=1, BENCH_REPS, BENCH_SECONDS, BENCH_PATHS, BENCH_RATE, BENCH_IDLE_MAX
# (see scripts/bench.sh).
bench:
	GO=$(GO) ./scripts/bench.sh

demo: build
	./deploy/demo.sh $(BIN)

# demo-cluster: etcd, two edges, two sites and a laptop in network namespaces;
# under a running ping an edge is killed, comes back and takes its site back,
# then the other edge stops cleanly (drains). Its etcd member is deploy/demo-etcd,
# etcd's server embedded (go.mod already has it), so no etcd package is needed.
demo-cluster: build
	$(GO) build -o bin/demo-etcd ./deploy/demo-etcd
	./deploy/demo-cluster.sh $(BIN) bin/demo-etcd

clean:
	rm -rf bin
