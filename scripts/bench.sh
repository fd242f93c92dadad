#!/usr/bin/env bash
# make bench: first every Go benchmark in every package (`go test -bench .`),
# then, as root, the network-namespace lab (bench/netbench_linux_test.go, build
# tag netbench) that measures Switchyard, wireguard-go and kernel forwarding in
# the same run, prints the table with ratios and targets, and writes
# bin/bench/results.json. Installs iperf3 and the other tools with apt if they
# are missing. The lab removes every namespace it made, also on Ctrl-C.
#
# Before each path (and the crypto floor) the lab waits until the other
# processes use less than BENCH_IDLE_PCT (default 10) % of one core over 2 s,
# at most BENCH_IDLE_MAX seconds (default 60), and prints "NOT IDLE" when it
# could not get an idle machine. Each repetition runs TCP with 1 and with 4
# streams and 1 stream at BENCH_RATE (default 700M, 0 to skip), each with its
# own CPU per GB, and ChaCha20-Poly1305 Open + Seal at 1350 B (the crypto floor).
# With the MASQUE path it also runs transport/masque's BenchmarkDatagramFloor
# (bare QUIC on loopback: quic-go's own cost per forwarded datagram) as often.
#
# Knobs (environment): BENCH_QUICK=1 (smoke test: 1 run of 1 s per path,
# 100ms per Go benchmark, no 100k sessions), BENCH_REPS (default 5),
# BENCH_SECONDS (default 3), BENCH_PINGS (default 100), BENCH_PATHS (comma
# list: kernel,wggo-direct-gomod,wggo-hub-gomod,wggo-relay-gomod,wggo-direct,wggo-hub,
# switchyard-s2s,switchyard-client,switchyard-s2s-masque,switchyard-s2s-trunk),
# BENCH_GOMOD=0 (skip the -gomod paths, the references of every target),
# BENCH_DEBIAN=1 (also Debian's wireguard-go, wggo-direct and wggo-hub: a footnote),
# BENCH_IDLE_PCT, BENCH_IDLE_MAX, BENCH_RATE,
# BENCH_PROFILE=1 (save the edge's CPU profile during a site-to-site 4-stream run; =rate: during the offered-rate run),
# BENCH_BUDGET (lab time limit, default 13m or 1.5× the expected time), BENCH_BENCHTIME (default 1s),
# BENCH_FILTER (Go benchmark regexp, default .), BENCH_MICRO=0 / BENCH_LAB=0 /
# BENCH_FAILOVER=0 to skip a part.
set -euo pipefail
GO=${GO:-go}
out=${BENCH_DIR:-bin/bench}
mkdir -p "$out"
quick=${BENCH_QUICK:-0}
benchtime=${BENCH_BENCHTIME:-1s}
if [ "$quick" = 1 ]; then benchtime=${BENCH_BENCHTIME:-100ms}; fi
status=0

if [ "${BENCH_MICRO:-1}" != 0 ]; then
  echo "== Go benchmarks (-benchtime $benchtime), output in $out/micro.txt"
  BENCH_QUICK=$quick $GO test -run '^$' -bench "${BENCH_FILTER:-.}" -benchmem -benchtime "$benchtime" -timeout 30m ./... \
    | tee "$out/micro.txt" || status=$?
fi

[ "${BENCH_LAB:-1}" != 0 ] || exit "$status"

if [ "$(id -u)" = 0 ]; then
  declare -A pkg=([ip]=iproute2 [ping]=iputils-ping [iperf3]=iperf3 [wg]=wireguard-tools)
  if [ "${BENCH_DEBIAN:-0}" = 1 ]; then pkg[wireguard-go]=wireguard-go; fi
  missing=()
  for tool in "${!pkg[@]}"; do command -v "$tool" >/dev/null || missing+=("${pkg[$tool]}"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
else
  echo "== not root: the network-namespace lab needs root; printing the Go benchmarks' targets only"
fi

echo "== network-namespace lab"
$GO build -o bin/switchyard ./cmd/switchyard
$GO test -c -tags netbench -o "$out/netbench.test" ./bench
# quic-go's own floor under the MASQUE path (BenchmarkDatagramFloor), which
# the lab runs on an idle machine before that path.
$GO test -c -o "$out/masque.test" ./transport/masque
# Debian's wireguard-go predates TUN and UDP offloads; also measure the version
# the connectors embed (go.mod), built from source, unless BENCH_GOMOD=0.
gomod=
if [ "${BENCH_GOMOD:-1}" != 0 ]; then
  $GO build -o "$out/wireguard-go" golang.zx2c4.com/wireguard && gomod=$(realpath "$out/wireguard-go")
fi
# Run the test binary directly, so that Ctrl-C reaches it and it removes its lab;
# no -test.timeout (its panic would skip the cleanup): BENCH_BUDGET bounds the lab.
BENCH_WGGO_GOMOD=$gomod BENCH_MASQUE_TEST=$(realpath "$out/masque.test") BENCH_BIN=$(realpath bin/switchyard) BENCH_OUT=$(realpath "$out")/results.json BENCH_MICRO_FILE=$(realpath "$out")/micro.txt \
  "$out/netbench.test" -test.run '^TestNetBench$' -test.v -test.timeout 0 || status=$?

# Failover: the high-availability end-to-end tests measure the traffic gap
# (20 ms pings, a TCP transfer across it) when a replica or the edge dies;
# their "failover gap:" lines go to failover.txt and failover.json.
if [ "${BENCH_FAILOVER:-1}" != 0 ] && [ "$(id -u)" = 0 ]; then
  command -v keepalived >/dev/null || apt-get install -y --no-install-recommends keepalived >/dev/null || true
  echo "== failover gaps (e2e/ha_linux_test.go; target < 1 s)"
  $GO test -count=1 -timeout 10m -run '^(TestReplicaFailoverAtTheEdge|TestReplicaFailoverWithKeepalived|TestEdgeRestart)$' -v ./e2e \
    > "$out/failover.log" 2>&1 || { status=1; tail -50 "$out/failover.log"; }
  sed -n 's/.*failover gap: \(.*\)$/\1/p' "$out/failover.log" | tee "$out/failover.txt"
  awk -F': ' 'BEGIN { printf "[" } { sub(/ \(.*/, "", $2); printf "%s{\"event\":\"%s\",\"gap\":\"%s\"}", (NR > 1 ? "," : ""), $1, $2 } END { print "]" }' \
    "$out/failover.txt" > "$out/failover.json"
fi
exit "$status"
