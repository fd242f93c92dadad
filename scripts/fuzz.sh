#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 5s).
# A failure that saved a crasher under testdata/fuzz fails at once (the
# crasher joins the seed corpus, so every later `go test` fails on it too);
# one that saved nothing (the fuzzing engine itself hiccuped) is retried once.
set -euo pipefail
fuzztime=${FUZZTIME:-5s}
go=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for pkg in $($go list ./...); do
  dir=$($go list -f '{{.Dir}}' "$pkg")
  for f in $($go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $f ($fuzztime)"
    for attempt in 1 2; do
      before=$(find "$dir/testdata/fuzz/$f" -type f 2>/dev/null | wc -l || true)
      if $go test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
        break
      fi
      cat "$log"
      after=$(find "$dir/testdata/fuzz/$f" -type f 2>/dev/null | wc -l || true)
      if [ "$after" -gt "$before" ] || [ "$attempt" = 2 ]; then
        echo "FAIL: $f in $pkg" >&2
        exit 1
      fi
      echo "no crasher was saved; retrying $f once"
    done
  done
done
