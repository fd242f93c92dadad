#!/usr/bin/env bash
# make vulncheck: govulncheck over the whole module against a vulnerability
# database built offline from the golang.org/x/vulndb module (fetched through
# the Go module proxy like any module; no other network access). Exits
# non-zero when a vulnerability is reachable from our code.
set -euo pipefail
GO=${GO:-go}
GOVULNCHECK_VERSION=${GOVULNCHECK_VERSION:-v1.9.0}
VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
out=${VULNDB_DIR:-bin/vulndb}

src=$($GO mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src/data/osv" ] || { echo "vulncheck: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv" >&2; exit 1; }
$GO run ./internal/tools/vulndb -osv "$src/data/osv" -out "$out"
$GO run "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" -db "file://$(cd "$out" && pwd)" ./...
