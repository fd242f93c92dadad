#!/usr/bin/env bash
# The Switchyard cluster demo. It builds a lab of network namespaces — an etcd
# member, two edges on it with one cluster key, two sites behind connectors
# (A: 10.1.0.0/16, whose home is edge 1; B: 10.2.0.0/16, whose home is edge 2:
# each prefers the edge its token came from) and a laptop running the client —
# starts every daemon, and shows:
#   1. the cluster from any edge (edge list, tunnel list);
#   2. site A -> site B across the trunk between the edges, the server in B
#      seeing the true source 10.1.2.3; the laptop reaching both sites;
#   3. a ping every 20 ms from site A to site B while edge 1, which carries
#      site A, is killed with SIGKILL: how many pings were lost and the gap;
#   4. edge 1 started again under a ping every 20 ms from A to B: site A's
#      connector returns to its home edge once edge 1 has answered its
#      heartbeats for 1.5 s; how long that took, the pings lost and the gap;
#   5. a clean stop (SIGTERM) of edge 2, which carries site B, under a ping
#      every 20 ms from A to B: edge 2 drains (B's connector moves to edge 1 at
#      once), withdraws and exits by itself with status 0; the pings lost and
#      the gap, and edge 2 down in edge list.
# It exits non-zero if a step fails: among others, traffic stopped for more
# than 3 s when edge 1 dies (the goal is under 1 s), no return to edge 1
# within 15 s of its start, or more than 500 ms without a reply across the
# return or the drain (the goal is under 100 ms). It takes about 35 s.
# Everything it creates is removed at the end, also after a failure or on
# Ctrl-C. Needs root, iproute2, ping, curl and python3; the etcd member is
# deploy/demo-etcd (etcd's own Go server, embedded). Traffic stays inside the
# lab's namespaces.
set -euo pipefail
bin=$(realpath "${1:-bin/switchyard}")
etcd=$(realpath "${2:-bin/demo-etcd}")
[ "$(id -u)" = 0 ] || { echo "the demo builds network namespaces: run it as root" >&2; exit 1; }
for tool in ip ping curl python3; do
  command -v "$tool" >/dev/null || { echo "the demo needs $tool" >&2; exit 1; }
done
[ -x "$etcd" ] || { echo "no etcd member program at $etcd (make demo-cluster builds it)" >&2; exit 1; }

p="sc$(printf %04x $RANDOM)"          # prefix of every namespace and veth (interface names are at most 15 bytes)
work=$(mktemp -d /tmp/switchyard-demo-cluster.XXXXXX)
namespaces=(wan etcd edge1 edge2 gwa gwb laptop hosta hostb)
agents=() edges=() etcds=()           # PIDs, stopped in this order: agents and servers, edges, etcd

# stop PID...: SIGTERM, then SIGKILL for any still running after 10 s.
stop() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null
  for _ in $(seq 50); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  kill -KILL "$@" 2>/dev/null
  for pid in "$@"; do wait "$pid" 2>/dev/null; done
}
# forget PID: a process that has ended and been waited for is no longer stopped
# at the end (its PID may be reused).
forget() {
  local a=() e=() pid
  for pid in "${agents[@]}"; do [ "$pid" = "$1" ] || a+=("$pid"); done
  for pid in "${edges[@]}"; do [ "$pid" = "$1" ] || e+=("$pid"); done
  agents=("${a[@]}") edges=("${e[@]}")
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop "${agents[@]}"; stop "${edges[@]}"; stop "${etcds[@]}"
  for n in "${namespaces[@]}"; do ip netns del "$p-$n" 2>/dev/null; done
  rm -rf "$work"
  if ip netns list | grep -q "^$p-"; then
    echo "the lab's namespaces are still there: $(ip netns list | grep "^$p-" | tr '\n' ' ')" >&2
    [ $rc = 0 ] && rc=1
  fi
  if ip -o link show | grep -q " $p-"; then # the veths live in the lab's namespaces only
    echo "the lab's interfaces are still there: $(ip -o link show | grep " $p-" | awk '{print $2}' | tr '\n' ' ')" >&2
    [ $rc = 0 ] && rc=1
  fi
  case $rc in
  0) echo "   the lab is removed" ;;
  130 | 143) printf '\n\033[1m== interrupted; the lab is removed\033[0m\n' >&2 ;;
  *) printf '\n\033[1;31m== the demo failed (exit status %d); the lab is removed\033[0m\n' "$rc" >&2 ;;
  esac
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

nx() { local n=$1; shift; ip netns exec "$p-$n" "$@"; }
# bg NS LOG CMD...: run CMD in NS in the background; its PID is in $! (ip
# netns exec execs CMD, so it is CMD's own PID).
bg() { local n=$1 log=$2; shift 2; ip netns exec "$p-$n" "$@" >>"$work/$log.log" 2>&1 & }
wait_for() { # wait_for LOG TEXT [SECONDS]
  for _ in $(seq $((${3:-20} * 5))); do grep -q -- "$2" "$work/$1.log" 2>/dev/null && return 0; sleep 0.2; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$work/$1.log" >&2; exit 1
}
fail() { echo "FAILED: $*" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { local n=$1; shift; printf '\033[2m[%s]$ %s\033[0m\n' "$n" "$*"; nx "$n" "$@"; }
# sy N ARGS...: the CLI against edge N, as its admin.json says.
sy() { local e=$1; shift; nx "edge$e" "$bin" --config "$work/edge$e/admin.json" "$@"; }
sayrun() { local e=$1; shift; printf '\033[2m[edge%s]$ switchyard %s\033[0m\n' "$e" "$*"; sy "$e" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# edge_until VIA NAME COND SECONDS WHAT: wait until edge NAME's row of edge
# VIA's edge list (a dict e) meets the Python condition COND; fail after SECONDS.
edge_until() {
  for _ in $(seq $(($4 * 5))); do
    [ "$(sy "$1" edge list -o json | json "[e for e in d if e['name'] == '$2' and ($3)] != []")" = True ] && return 0
    sleep 0.2
  done
  fail "edge $1's edge list does not show $2 $5 after $4 s"
}
# start_pinger LOG: a ping every 20 ms from host A to host B, until
# stop_pinger (or -w SECONDS as a further argument); its PID is in $pinger.
start_pinger() { bg hosta "$1" ping -D -n -i 0.02 -W 1 "${@:2}" 10.2.0.5; pinger=$!; agents+=("$pinger"); }
stop_pinger() { kill -INT "$pinger" 2>/dev/null; wait "$pinger" 2>/dev/null || true; forget "$pinger"; }
# pings LOG EVENT MAXGAP WHAT: the ping stream in LOG around WHAT, which
# happened at time EVENT: the pings sent, those lost (one still on its way
# when the ping stops is not) and the longest time between two replies (ping
# -D times them as they arrive: ping sends late when starved), or after the
# last one. Fails if that is past MAXGAP seconds or no reply came from half a
# second after the event on.
pings() {
  python3 - "$work/$1.log" "$2" "$3" "$4" <<'PY'
import re, sys
log, event, maxgap, what = open(sys.argv[1]).read(), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
replies = [(float(t), int(q)) for t, q in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", log, re.M)]
m = re.search(r"(\d+) packets transmitted", log)
if not m or len(replies) < 2:
    sys.exit("FAILED: the ping got no replies:\n" + log)
times = [t for t, _ in replies]
sent, last = int(m[1]), max(q for _, q in replies)
tail = max(0, sent - last - 1)  # unanswered after the last reply, but for one on its way
lost = last - len({q for _, q in replies}) + tail
gap, at = max((b - a, a) for a, b in zip(times, times[1:]))
if tail * 0.02 > gap:
    gap, at = tail * 0.02, times[-1]
off = (at - event) * 1000
print(f"   {sent} pings sent every 20 ms, {lost} lost; the longest time between two replies: {gap * 1000:.0f} ms "
      f"(starting {abs(off):.0f} ms {'after' if off >= 0 else 'before'} {what})")
if not [t for t in times if t > event + 0.5]:
    sys.exit(f"FAILED: site A's pings to site B did not come back after {what}")
if gap > maxgap:
    sys.exit(f"FAILED: site A's pings to site B stopped for {gap * 1000:.0f} ms across {what} (the bound is {maxgap * 1000:.0f} ms)")
PY
}
# exited PID SECONDS: wait until PID (a child of this shell) ends by itself;
# its exit status is then in $status. Fails after SECONDS.
exited() {
  for _ in $(seq $(($2 * 20))); do
    if ! kill -0 "$1" 2>/dev/null; then
      status=0
      wait "$1" 2>/dev/null || status=$?
      forget "$1"
      return 0
    fi
    sleep 0.05
  done
  fail "PID $1 is still running $2 s after its SIGTERM"
}
# replica_edge TUNNEL: the edge that carries the traffic of the tunnel's
# replica, as edge 1's tunnel list says.
replica_edge() {
  sy 1 tunnel list -o json | json "','.join(c.get('edge') or '-' for t in d if t['name'] == '$1' for c in t.get('connections') or [])"
}
# logged LOG TEXT: the last line of LOG that holds TEXT, without its time,
# level and daemon (the daemons log with slog's text handler).
logged() {
  grep -F -- "$2" "$work/$1.log" | tail -n1 | sed -e 's/^time=[^ ]* level=[^ ]* msg=//' -e 's/ daemon=[^ ]*//' -e 's/^/   /'
}
# now: the time in seconds, as ping -D prints it.
now() { date +%s.%N; }

say "Building the lab (namespaces prefixed $p)"
for n in "${namespaces[@]}"; do ip netns add "$p-$n"; nx "$n" ip link set lo up; done
nx wan sysctl -qw net.ipv4.ip_forward=1
i=0
for n in etcd edge1 edge2 gwa gwb laptop; do
  a=$((4*i+1)); b=$((4*i+2))
  ip link add "$p-w$i" netns "$p-wan" type veth peer name "$p-x$i" netns "$p-$n"
  nx wan ip addr add "203.0.113.$a/30" dev "$p-w$i"; nx wan ip link set "$p-w$i" up
  nx "$n" ip addr add "203.0.113.$b/30" dev "$p-x$i"; nx "$n" ip link set "$p-x$i" up
  nx "$n" ip route add default via "203.0.113.$a"
  i=$((i+1))
done
site() { # site GW HOST GWIP HOSTIP
  ip link add "$p-$1" netns "$p-$1" type veth peer name "$p-$2" netns "$p-$2"
  nx "$1" ip addr add "$3/16" dev "$p-$1"; nx "$1" ip link set "$p-$1" up
  nx "$2" ip addr add "$4/16" dev "$p-$2"; nx "$2" ip link set "$p-$2" up
  nx "$2" ip route add default via "$3"
}
site gwa hosta 10.1.0.1 10.1.2.3
site gwb hostb 10.2.0.1 10.2.0.5
echo "etcd 203.0.113.2 | edge-1 203.0.113.6 | edge-2 203.0.113.10 | site A 10.1.0.0/16 (host 10.1.2.3) | site B 10.2.0.0/16 (host 10.2.0.5) | laptop"

say "Starting etcd and two edges on it, with one cluster key"
bg etcd etcd "$etcd" --data-dir "$work/etcd" --listen-client 203.0.113.2:2379 --listen-peer 203.0.113.2:2380; etcds+=($!)
wait_for etcd "etcd member ready"
"$bin" edge cluster-key create "$work/cluster.key" >/dev/null
start_edge() { # start_edge N [LOG]
  local a="203.0.113.$((4*$1+2))"
  bg "edge$1" "${2:-edge$1}" "$bin" edge --data-dir "$work/edge$1" --edge-name "edge-$1" \
    --store etcd://203.0.113.2:2379 --cluster-key "$work/cluster.key" \
    --api-listen "$a:7443" --wg-listen :51820 --public-addr "$a:51820" --masque-listen ""
  edges+=($!)
}
start_edge 1; edge1=$!
wait_for edge1 "edge started"    # the first edge creates the cluster's secrets
start_edge 2; edge2=$!
wait_for edge2 "edge started"
sayrun 1 edge list

say "Control plane, through either edge: site A's token from edge 1, site B's from edge 2"
tok() { sy "$1" tunnel create -o json "$2" | json 'd["token"]'; }
tok_a=$(tok 1 site-a); tok_b=$(tok 2 site-b)
sy 1 tunnel route ip add 10.1.0.0/16 site-a "site A LAN"
sy 2 tunnel route ip add 10.2.0.0/16 site-b "site B LAN"
sy 1 split-tunnel mode include >/dev/null
sy 1 split-tunnel add 10.0.0.0/8 "private sites" >/dev/null
sayrun 2 tunnel route ip show

say "Starting the connectors (each prefers the edge its token came from) and the client"
bg gwa conn-a "$bin" connector run --token "$tok_a" --state-dir "$work/gwa" --tun-name sy0; agents+=($!)
bg gwb conn-b "$bin" connector run --token "$tok_b" --state-dir "$work/gwb" --tun-name sy0; agents+=($!)
enroll=$(sy 2 device enroll-token create -o json | json 'd["token"]')
bg laptop client "$bin" client up --token "$enroll" --state-dir "$work/laptop" --tun-name sy1 --name laptop --resolv-conf "$work/laptop-resolv.conf"; agents+=($!)
for l in conn-a conn-b client; do wait_for "$l" "host configured"; done
# Each agent holds a session to both edges: the one it prefers active, the other standby.
wait_for conn-a "sessions=2 active=edge-1"
wait_for conn-b "sessions=2 active=edge-2"
wait_for client "sessions=2"
status() { # status GW: the connector's active and standby edges, as it reports them
  nx "$1" "$bin" connector status --state-dir "$work/$1" -o json |
    json '"active " + (d.get("edge") or "-") + ", standby " + (",".join(d.get("standby") or []) or "-")'
}
echo "   site A's connector: $(status gwa)"
echo "   site B's connector: $(status gwb)"
for e in edge-1 edge-2; do edge_until 2 $e "e['sessions'] == 3" 10 "with three sessions"; done
sayrun 2 tunnel list
sayrun 1 edge list

# Web servers that log the client address they see.
bg hosta web-a python3 -m http.server --bind 10.1.2.3 8080; agents+=($!)
bg hostb web-b python3 -m http.server --bind 10.2.0.5 8080; agents+=($!)
for l in web-a web-b; do wait_for "$l" "Serving HTTP"; done
seen() { # seen LOG WANT: the address the server logged last; fail unless it is WANT
  local got; got=$(tail -n1 "$work/$1.log" | awk '{print $1}')
  echo "   the server saw the client as $got"
  [ "$got" = "$2" ] || fail "the server saw $got, not the true source $2"
}

say "1. Site A (on edge 1) -> site B (on edge 2): across the trunk, with the true source"
run hosta curl -s -m 5 -o /dev/null -w '   HTTP %{http_code} from 10.2.0.5\n' http://10.2.0.5:8080/
seen web-b 10.1.2.3
run hostb curl -s -m 5 -o /dev/null -w '   HTTP %{http_code} from 10.1.2.3\n' http://10.1.2.3:8080/
seen web-a 10.2.0.5
# The packets crossed the trunk: edge 1's counters for its trunk to edge 2.
sy 1 stats -o json | python3 -c '
import json, sys
t = [t for t in json.load(sys.stdin).get("trunks") or [] if t["edge"] == "edge-2"]
if not t or not t[0]["packets_out"] or not t[0]["packets_in"]:
    sys.exit("FAILED: edge 1 counts no packets on its trunk to edge 2: %s" % t)
t = t[0]
print("   edge 1'"'"'s trunk to edge 2: %d packets out, %d in (switchyard stats)" % (t["packets_out"], t["packets_in"]))'
laptop_ip=$(sy 2 device list -o json | json 'd[0]["ip"]')
run laptop curl -s -m 5 -o /dev/null -w '   HTTP %{http_code} from site A\n' http://10.1.2.3:8080/
seen web-a "$laptop_ip"
run laptop curl -s -m 5 -o /dev/null -w '   HTTP %{http_code} from site B\n' http://10.2.0.5:8080/
seen web-b "$laptop_ip"

say "2. A ping every 20 ms from site A to site B; edge 1, which carries site A, dies (SIGKILL)"
start_pinger ping -w 8
sleep 2.5
[ "$(readlink /proc/$edge1/exe)" = "$bin" ] || fail "PID $edge1 is not edge-1's switchyard"
printf '\033[2m$ kill -KILL %s   # edge-1'"'"'s PID\033[0m\n' "$edge1"
killed_at=$(now)
kill -KILL "$edge1"
wait "$edge1" 2>/dev/null || true
forget "$edge1"
wait "$pinger" 2>/dev/null || true
forget "$pinger"
pings ping "$killed_at" 3 "the kill" || exit 1 # the goal is under 1 s; fail only far beyond it
echo "   site A's connector: $(status gwa)"
echo "   waiting for edge-1's registration to expire (its etcd lease is 5 s)"
edge_until 2 edge-1 "not e['healthy'] and e['sessions'] == 0" 10 "down, with no sessions"
sayrun 2 edge list
run hosta curl -s -m 5 -o /dev/null -w '   HTTP %{http_code} from 10.2.0.5, now through edge 2 alone\n' http://10.2.0.5:8080/
seen web-b 10.1.2.3

say "3. Edge 1 starts again (same data dir, name and etcd) under a ping every 20 ms from A to B; site A returns to it"
start_pinger ping-return
sleep 0.5
start_edge 1 edge1-again; edge1=$!
wait_for edge1-again "edge started" 30
started_at=$(now)
echo "   edge 1 is up; site A's connector returns to it, its home edge, once edge 1 has answered its heartbeats for 1.5 s"
until [ "$(status gwa)" = "active edge-1, standby edge-2" ]; do
  python3 -c "import sys; sys.exit(float('$(now)') - $started_at < 15)" && fail "site A's connector is not back on edge-1 15 s after edge 1 started (it is on $(status gwa))"
  sleep 0.1
done
back_at=$(now)
python3 -c "print('   site A\'s connector is active on edge-1 again, %.1f s after edge 1 started' % ($back_at - $started_at))"
echo "   site A's connector: $(status gwa); its log:"
logged conn-a "the traffic moved back to it"
for _ in $(seq 25); do [ "$(replica_edge site-a)" = edge-1 ] && break; sleep 0.2; done
[ "$(replica_edge site-a)" = edge-1 ] || fail "edge 1's tunnel list shows site-a on $(replica_edge site-a), not edge-1"
sleep 1
stop_pinger
pings ping-return "$back_at" 0.5 "the return" || exit 1
edge_until 2 edge-1 "e['healthy'] and e['sessions'] == 3" 15 "healthy, with the three agents' sessions"
sayrun 1 tunnel list
sayrun 2 edge list

say "4. Edge 2, which carries site B, stops cleanly (SIGTERM) under a ping every 20 ms from A to B: it drains first"
echo "   site B's connector: $(status gwb)"
[ "$(status gwb)" = "active edge-2, standby edge-1" ] || fail "site B's connector is not active on edge-2 with edge-1 standby"
start_pinger ping-drain
sleep 1.5
[ "$(readlink /proc/$edge2/exe)" = "$bin" ] || fail "PID $edge2 is not edge-2's switchyard"
printf '\033[2m$ kill -TERM %s   # edge-2'"'"'s PID\033[0m\n' "$edge2"
stopped_at=$(now)
kill -TERM "$edge2"
exited "$edge2" 8
python3 -c "print('   edge 2 exited by itself %.1f s after its SIGTERM, with status $status' % ($(now) - $stopped_at))"
[ "$status" = 0 ] || fail "edge 2 exited with status $status after its SIGTERM, not 0"
echo "   edge 2's log and site B's connector's:"
logged edge2 "draining:"
logged conn-b "the active edge is stopping"
sleep 1
stop_pinger
pings ping-drain "$stopped_at" 0.5 "the SIGTERM" || exit 1 # the goal is under 100 ms
echo "   site B's connector: $(status gwb)"
case "$(status gwb)" in "active edge-1,"*) ;; *) fail "site B's connector is not active on edge-1 after edge 2 stopped" ;; esac
edge_until 1 edge-2 "not e['healthy']" 3 "down"
sayrun 1 edge list
run hosta curl -s -m 5 -o /dev/null -w '   HTTP %{http_code} from 10.2.0.5, now through edge 1 alone\n' http://10.2.0.5:8080/
seen web-b 10.1.2.3

say "Done: stopping every daemon and removing the lab"
