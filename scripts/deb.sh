#!/usr/bin/env bash
# make deb: bin/deb/switchyard_VERSION_{amd64,arm64}.deb, built with nfpm
# (pinned here and run through the Go module proxy like govulncheck in
# vulncheck.sh, so go.mod stays the product's). Both binaries are static
# (CGO_ENABLED=0) and stamped like make build. The shell completions and man
# page are make docs' (bin/docs), the environment files come from the same
# binary (bin/switchyard envfile ROLE): all generated from the CLI.
set -euo pipefail
GO=${GO:-go}
NFPM_VERSION=${NFPM_VERSION:-v2.45.2}
VERSION=${VERSION:?set VERSION (the Makefile does)}
COMMIT=${COMMIT:-unknown}
ARCHES=${DEB_ARCHES:-amd64 arm64}
out=bin/deb

# Debian's version from git describe's: v1.2.0 -> 1.2.0, v1.2.0-5-gabc1234 (5
# commits after the tag) -> 1.2.0+5.gabc1234 (sorts after 1.2.0),
# v1.3.0-rc1 -> 1.3.0~rc1 (sorts before 1.3.0), -dirty -> .dirty.
debversion=$(printf '%s\n' "$VERSION" | sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)/+\1.g\2/; s/-dirty$/.dirty/; s/-/~/g')
case $debversion in
[0-9]*) ;;
*) echo "deb: version $VERSION does not start with a digit (build from a git checkout, or set VERSION=v1.2.3)" >&2; exit 1 ;;
esac

rm -rf "$out"
mkdir -p "$out/gen"
for arch in $ARCHES; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch $GO build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o "$out/$arch/switchyard" ./cmd/switchyard
done

bin=${BIN:-bin/switchyard}
docs=${DOCS:-bin/docs}
for f in "$bin" "$docs/completion/switchyard.bash" "$docs/completion/_switchyard" "$docs/completion/switchyard.fish" "$docs/man/switchyard.1.gz"; do
	[ -f "$f" ] || { echo "deb: $f is missing (make deb runs make docs first)" >&2; exit 1; }
done
for role in edge connector client; do
	"$bin" envfile "$role" >"$out/gen/$role.env"
done
cp "$docs/completion/switchyard.bash" "$docs/completion/_switchyard" "$docs/completion/switchyard.fish" \
	"$docs/man/switchyard.1.gz" "$out/gen/"

for arch in $ARCHES; do
	SY_ARCH=$arch SY_DEBVERSION=$debversion $GO run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" \
		package --config deploy/deb/nfpm.yaml --packager deb --target "$out/switchyard_${debversion}_$arch.deb"
done
ls -l "$out"/*.deb
