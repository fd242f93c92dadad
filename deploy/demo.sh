#!/usr/bin/env bash
# The Switchyard demo. It builds a lab of network namespaces — an edge, three
# sites behind connectors (A and B both use 10.1.0.0/16, in two virtual
# networks; C uses 10.3.0.0/16), and a laptop running the client — starts every
# daemon, and shows with ping, curl and Python's http.server (whose log prints
# the client address it saw):
#   1. the laptop reaching a server in site A, which sees the laptop's overlay IP;
#   2. a server in site C opening a connection to the laptop (server-initiated);
#   3. site A <-> site C with true source IPs both ways;
#   4. the same address 10.1.2.3 reaching a different server after the laptop
#      switches virtual network.
# Everything it creates is removed at the end, also on Ctrl-C. Needs root,
# iproute2, ping, curl and python3. Traffic stays inside the lab's namespaces.
set -euo pipefail
bin=$(realpath "${1:-bin/switchyard}")
[ "$(id -u)" = 0 ] || { echo "the demo builds network namespaces: run it as root" >&2; exit 1; }
for tool in ip ping curl python3; do
  command -v "$tool" >/dev/null || { echo "the demo needs $tool" >&2; exit 1; }
done

p="sd$(printf %04x $RANDOM)"          # prefix of every namespace and veth (short: interface names are at most 15 bytes)
work=$(mktemp -d /tmp/switchyard-demo.XXXXXX)
namespaces=(wan edge gwa gwb gwc hosta hostb hostc laptop)
pids=()

cleanup() {
  set +e
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for n in "${namespaces[@]}"; do ip netns del "$p-$n" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nx() { local n=$1; shift; ip netns exec "$p-$n" "$@"; }
bg() { local n=$1 log=$2; shift 2; ip netns exec "$p-$n" "$@" >"$work/$log.log" 2>&1 & pids+=($!); }
wait_for() { # wait_for LOG TEXT
  for _ in $(seq 100); do grep -q "$2" "$work/$1.log" 2>/dev/null && return 0; sleep 0.2; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$work/$1.log" >&2; exit 1
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { local n=$1; shift; printf '\033[2m[%s]$ %s\033[0m\n' "$n" "$*"; nx "$n" "$@"; }
sy() { nx edge "$bin" --config "$work/edge/admin.json" "$@"; }

say "Building the lab (namespaces prefixed $p)"
for n in "${namespaces[@]}"; do ip netns add "$p-$n"; nx "$n" ip link set lo up; done
nx wan sysctl -qw net.ipv4.ip_forward=1
i=0
for n in edge gwa gwb gwc laptop; do
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
site gwb hostb 10.1.0.1 10.1.2.3
site gwc hostc 10.3.0.1 10.3.0.5
echo "edge 203.0.113.2 | site A 10.1.0.0/16 (host 10.1.2.3) | site B 10.1.0.0/16 (host 10.1.2.3) | site C 10.3.0.0/16 (host 10.3.0.5) | laptop"

say "Starting the edge"
bg edge edge "$bin" edge --data-dir "$work/edge" --api-listen 203.0.113.2:7443 --wg-listen :51820 --public-addr 203.0.113.2:51820
wait_for edge "edge started"

say "Control plane: two virtual networks, three tunnels, overlapping routes"
sy tunnel vnet add --default vnet-a "sites A and C"
sy tunnel vnet add vnet-b "site B"
tok() { sy tunnel create -o json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
tok_a=$(tok site-a); tok_b=$(tok site-b); tok_c=$(tok site-c)
sy tunnel route ip add --vnet vnet-a 10.1.0.0/16 site-a "site A LAN"
sy tunnel route ip add --vnet vnet-b 10.1.0.0/16 site-b "site B LAN"
sy tunnel route ip add --vnet vnet-a 10.3.0.0/16 site-c "site C LAN"
sy tunnel route ip show
sy tunnel route ip overlaps
sy split-tunnel mode include >/dev/null
sy split-tunnel add 10.0.0.0/8 "private sites"

say "Starting connectors on the three site gateways and the client on the laptop"
bg gwa conn-a "$bin" connector run --token "$tok_a" --state-dir "$work/gwa" --tun-name sy0
bg gwb conn-b "$bin" connector run --token "$tok_b" --state-dir "$work/gwb" --tun-name sy0
bg gwc conn-c "$bin" connector run --token "$tok_c" --state-dir "$work/gwc" --tun-name sy0
enroll=$(sy device enroll-token create -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
bg laptop client "$bin" client up --token "$enroll" --state-dir "$work/laptop" --tun-name sy1 --name laptop --resolv-conf "$work/laptop-resolv.conf"
for l in conn-a conn-b conn-c client; do wait_for "$l" "host configured"; done
sy tunnel list
sy device list
laptop_ip=$(sy device list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ip"])')
run gwa ip route show dev sy0

# Web servers that log the client address they see.
bg hosta web-a python3 -m http.server --bind 10.1.2.3 8080
bg hostb web-b python3 -m http.server --bind 10.1.2.3 8080
bg hostc web-c python3 -m http.server --bind 10.3.0.5 8080
bg laptop web-laptop python3 -m http.server --bind "$laptop_ip" 8080
for l in web-a web-b web-c web-laptop; do wait_for "$l" "Serving HTTP"; done
seen() { tail -n1 "$work/$1.log" | awk '{print "   the server saw the client as " $1}'; }

say "1. The laptop reaches a server in site A, which sees the laptop's overlay IP ($laptop_ip)"
run laptop ping -c 2 -W 2 10.1.2.3
run laptop curl -s -o /dev/null -w '   HTTP %{http_code} from 10.1.2.3\n' http://10.1.2.3:8080/
seen web-a

say "2. A server in site C opens a connection to the laptop (server-initiated)"
run hostc curl -s -o /dev/null -w '   HTTP %{http_code} from the laptop\n' "http://$laptop_ip:8080/"
seen web-laptop

say "3. Site A <-> site C, true source IPs both ways"
run hosta curl -s -o /dev/null -w '   HTTP %{http_code} from 10.3.0.5\n' http://10.3.0.5:8080/
seen web-c
run hostc curl -s -o /dev/null -w '   HTTP %{http_code} from 10.1.2.3\n' http://10.1.2.3:8080/
seen web-a

say "4. The laptop switches to vnet-b: the same 10.1.2.3 is now site B's server"
run laptop "$bin" client vnet --state-dir "$work/laptop" vnet-b
sleep 0.5
run laptop curl -s -o /dev/null -w '   HTTP %{http_code} from 10.1.2.3\n' http://10.1.2.3:8080/
printf '   site B'"'"'s server log: '; tail -n1 "$work/web-b.log"
printf '   and site C (vnet-a only) is out of reach: '
nx laptop curl -s -m 2 -o /dev/null http://10.3.0.5:8080/ && echo reachable || echo unreachable

say "5. A network policy at the edge: site C may not reach site A's web server"
sy policy add --action block --when "tunnel is site-c" --when "dst_ip is 10.1.2.3" --when "dst_port is 8080" no-c-to-a-web
printf '\033[2m[hostc]$ curl http://10.1.2.3:8080/\033[0m\n   '
nx hostc curl -s -m 3 -o /dev/null http://10.1.2.3:8080/ && echo "reachable (unexpected)" || echo "refused: the edge answered with a TCP RST"
run hostc ping -c 1 -W 2 10.1.2.3
echo "   the flow log (switchyard flows tail), with the true source and the policy that decided:"
sy flows tail --tunnel site-c --port 8080 -n 4
sy policy delete no-c-to-a-web >/dev/null

say "The edge's counters (the unreachable attempt above shows as no_route)"
sy stats | grep -E 'router\.|peers'

say "Done: stopping every daemon and removing the lab"
