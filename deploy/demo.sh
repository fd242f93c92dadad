#!/usr/bin/env bash
# The Switchyard demo: starts an edge on loopback with a throwaway data dir and
# walks the virtual networks scenario (two sites both using 10.1.0.0/16) with
# the CLI. Everything it starts or creates is removed at the end, also on Ctrl-C.
set -euo pipefail
bin=$(realpath "${1:-bin/switchyard}")
work=$(mktemp -d /tmp/switchyard-demo.XXXXXX)
edge_pid=""

cleanup() {
  if [ -n "$edge_pid" ] && kill -0 "$edge_pid" 2>/dev/null; then
    kill -TERM "$edge_pid" && wait "$edge_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
sy() { step "switchyard $*"; "$bin" "$@"; }
sy_fails() { step "switchyard $*"; if "$bin" "$@"; then echo "expected a refusal" >&2; exit 1; fi; }

echo "Starting an edge (data dir $work/edge, API on loopback)..."
"$bin" edge --data-dir "$work/edge" --api-listen 127.0.0.1:0 --public-addr 127.0.0.1:51820 \
  >"$work/edge.out" 2>"$work/edge.log" &
edge_pid=$!
for _ in $(seq 50); do grep -q 'api=' "$work/edge.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'api=' "$work/edge.log" || { cat "$work/edge.log"; exit 1; }
cat "$work/edge.out"
export SWITCHYARD_CONFIG="$work/edge/admin.json"

sy tunnel vnet add --default vnet-frankfurt "Frankfurt data center"
sy tunnel vnet add vnet-sydney "Sydney data center"
sy tunnel vnet list
sy tunnel create tunnel-fra
sy tunnel create tunnel-syd
sy tunnel route ip add 10.1.0.0/16 tunnel-fra "Frankfurt LAN"
sy tunnel route ip add --vnet vnet-sydney 10.1.0.0/16 tunnel-syd "Sydney LAN"
sy_fails tunnel route ip add 10.1.0.0/16 tunnel-fra
sy_fails tunnel route ip add 10.1.2.3/16 tunnel-fra
sy tunnel route ip show
sy tunnel route ip get 10.1.2.3
sy tunnel route ip get --vnet vnet-sydney 10.1.2.3
sy tunnel route ip overlaps
sy_fails tunnel vnet delete vnet-frankfurt

printf '\nDemo complete; stopping the edge and removing %s.\n' "$work"
