# Switchyard: `make demo` runs the main job, `make test` passes the tests.
GO       ?= go
BIN      := bin/switchyard
PKGS     := ./...
FUZZTIME ?= 5s

.PHONY: all build test unit fuzz lint bench demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/switchyard

# test: lint, every unit/integration/e2e test under the race detector, then a
# short run of every fuzz target. Network tests need root (CI runs as root).
test: lint unit fuzz

unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# fuzz runs each fuzz target for FUZZTIME (longer by hand: make fuzz FUZZTIME=5m).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet $(PKGS)

# bench compares against wireguard-go in the same run and prints ratios.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

demo: build
	./deploy/demo.sh $(BIN)

clean:
	rm -rf bin
