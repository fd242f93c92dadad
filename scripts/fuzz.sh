#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 5s). A
# failure saves its crasher under testdata/fuzz (it joins the seed corpus, so
# every later `go test` fails on it too) and fails the run at once.
set -euo pipefail
fuzztime=${FUZZTIME:-5s}
go=${GO:-go}

for pkg in $($go list ./...); do
  for f in $($go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $f ($fuzztime)"
    if ! $go test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" "$pkg"; then
      echo "FAIL: $f in $pkg" >&2
      exit 1
    fi
  done
done
