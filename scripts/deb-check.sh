#!/usr/bin/env bash
# make deb-check (as root): installs the .deb that make deb built on this
# machine with dpkg -i, checks what it installed (files, modes, the switchyard
# user, that nothing started and no live sysctl changed), reinstalls it over a
# changed conffile, runs systemd-analyze verify on the installed units and
# prints their systemd-analyze security scores (failing worse than OK), then
# purges it with dpkg -P and checks that nothing is left, including state that
# the daemons would have made. It also checks that each .deb's binary is an
# ELF for its architecture. It refuses to run over a switchyard install or
# state it did not make, and purges what it installed on any failure.
set -euo pipefail
shopt -s nullglob

debdir=${DEB_DIR:-bin/deb}
fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }
note() { echo "deb-check: $*"; }

[ "$(id -u)" = 0 ] || { echo "deb-check: needs root (dpkg -i, a system user)" >&2; exit 2; }
for tool in dpkg dpkg-deb systemd-analyze od; do
	command -v "$tool" >/dev/null || { echo "deb-check: needs $tool" >&2; exit 2; }
done

# Everything a purge removes must be ours: refuse anything already there.
units="switchyard-edge.service switchyard-connector.service switchyard-connector@.service switchyard-client.service"
owned=(/usr/bin/switchyard /etc/switchyard /usr/lib/sysctl.d/60-switchyard.conf
	/usr/share/bash-completion/completions/switchyard /usr/share/zsh/vendor-completions/_switchyard
	/usr/share/fish/vendor_completions.d/switchyard.fish /usr/share/man/man1/switchyard.1.gz /usr/share/doc/switchyard)
for u in $units; do owned+=("/usr/lib/systemd/system/$u"); done
leftovers() { # what of the package or its daemons exists now
	local p
	for p in "${owned[@]}" /var/lib/switchyard /var/lib/switchyard-connector* /var/lib/switchyard-client \
		/etc/systemd/system/*.wants/switchyard-*; do
		if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi
	done
	if getent passwd switchyard >/dev/null; then echo "user switchyard"; fi
	if getent group switchyard >/dev/null; then echo "group switchyard"; fi
}
status=$(dpkg-query -W -f='${db:Status-Abbrev}' switchyard 2>/dev/null || true)
case $status in
"" | "un "*) ;;
*) echo "deb-check: a switchyard package is installed here (dpkg status '$status') that deb-check did not install; refusing to touch it" >&2; exit 2 ;;
esac
if [ -n "$(leftovers)" ]; then
	echo "deb-check: refusing to run: these exist already and a purge would remove them:" >&2
	leftovers | sed 's/^/  /' >&2
	exit 2
fi

arch=$(dpkg --print-architecture)
debs=("$debdir"/switchyard_*_"$arch".deb)
[ ${#debs[@]} = 1 ] || fail "want one $debdir/switchyard_*_$arch.deb (make deb), found ${#debs[@]}"
deb=${debs[0]}
version=$(dpkg-deb -f "$deb" Version)

# The binary of every .deb is an ELF for the package's architecture (the
# arm64 one is cross-built and cannot run here).
tmp=$(mktemp -d)
installed=
cleanup() {
	rc=$?
	if [ -n "$installed" ]; then
		if [ $rc != 0 ]; then note "purging after the failure"; fi
		dpkg -P switchyard >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elf_machine() { # file -> e_machine of a little-endian 64-bit ELF, or a reason
	local magic
	magic=$(od -An -tx1 -N6 "$1" | tr -d ' \n')
	case $magic in
	7f454c460201) od -An -tu2 -j18 -N2 "$1" | tr -d ' \n' ;;
	*) echo "not-elf64le:$magic" ;;
	esac
}
for d in "$debdir"/switchyard_*.deb; do
	a=$(dpkg-deb -f "$d" Architecture)
	case $a in
	amd64) want=62 ;;    # EM_X86_64
	arm64) want=183 ;;   # EM_AARCH64
	*) fail "$d: unexpected architecture $a" ;;
	esac
	mkdir -p "$tmp/$a"
	dpkg-deb -x "$d" "$tmp/$a"
	got=$(elf_machine "$tmp/$a/usr/bin/switchyard")
	[ "$got" = "$want" ] || fail "$d: /usr/bin/switchyard has ELF machine $got, want $want ($a)"
	note "$d: /usr/bin/switchyard is a 64-bit ELF for $a (e_machine $got)"
done

sysctls="net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.core.rmem_max net.core.wmem_max"
live() { for s in $sysctls; do echo "$s=$(cat "/proc/sys/${s//.//}" 2>/dev/null)"; done; }
before=$(live)

note "dpkg -i $deb"
installed=1
dpkg -i "$deb"

# Files, modes and owners.
check_file() { # path mode
	[ -f "$1" ] || fail "$1 is missing"
	local m
	m=$(stat -c %a "$1")
	[ "$m" = "$2" ] || fail "$1 has mode $m, want $2"
	[ "$(stat -c %U:%G "$1")" = root:root ] || fail "$1 is owned by $(stat -c %U:%G "$1"), want root:root"
}
check_file /usr/bin/switchyard 755
for u in $units; do check_file "/usr/lib/systemd/system/$u" 644; done
check_file /usr/lib/sysctl.d/60-switchyard.conf 644
for r in edge connector client; do
	check_file "/etc/switchyard/$r.env" 600
	grep -q "^/etc/switchyard/$r.env$" "/var/lib/dpkg/info/switchyard.conffiles" || fail "/etc/switchyard/$r.env is not a conffile"
done
for f in /usr/share/bash-completion/completions/switchyard /usr/share/zsh/vendor-completions/_switchyard \
	/usr/share/fish/vendor_completions.d/switchyard.fish /usr/share/man/man1/switchyard.1.gz; do
	check_file "$f" 644
done
grep -q '^#SWITCHYARD_PUBLIC_ADDR=' /etc/switchyard/edge.env || fail "edge.env does not offer SWITCHYARD_PUBLIC_ADDR"
grep -q '^#SWITCHYARD_TUNNEL_TOKEN=' /etc/switchyard/connector.env || fail "connector.env does not offer SWITCHYARD_TUNNEL_TOKEN"
v=$(/usr/bin/switchyard --version)
case $v in
"switchyard v"*"(commit "*) note "$v" ;;
*) fail "switchyard --version prints '$v', want the version and commit" ;;
esac
if command -v man >/dev/null; then
	man -w switchyard | grep -q '^/usr/share/man/man1/switchyard.1.gz$' || fail "man -w switchyard does not find the page"
fi

# The edge's user: a system user and group, no login, no home made.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd switchyard) || fail "no user switchyard"
[ "$uid" -lt 1000 ] || fail "user switchyard has uid $uid, not a system user"
[ "$(getent group switchyard | cut -d: -f3)" = "$gid" ] || fail "user switchyard's group is not switchyard"
[ "$shell" = /usr/sbin/nologin ] || fail "user switchyard has shell $shell"
[ "$home" = /var/lib/switchyard ] || fail "user switchyard has home $home"
[ ! -e /var/lib/switchyard ] || fail "install made /var/lib/switchyard (systemd's StateDirectory= does, at start)"

# Install starts nothing and changes no live sysctl.
for p in /proc/[0-9]*; do # the packaged binary, not other switchyards (tests) on this machine
	if [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/bin/switchyard ]; then fail "/usr/bin/switchyard runs after install (pid ${p#/proc/})"; fi
done
[ "$(live)" = "$before" ] || fail "install changed live sysctls: $(diff <(echo "$before") <(live) | tr '\n' ' ')"
[ -z "$(echo /etc/systemd/system/*.wants/switchyard-*)" ] || fail "install enabled a unit"

# Reinstall (an upgrade's path through the scripts) keeps a changed conffile.
echo 'SWITCHYARD_PUBLIC_ADDR=203.0.113.10:51820' >>/etc/switchyard/edge.env
dpkg -i "$deb" >/dev/null
grep -q '^SWITCHYARD_PUBLIC_ADDR=203.0.113.10:51820$' /etc/switchyard/edge.env || fail "reinstall replaced a changed conffile"

# The installed units.
man_opt=--man=yes
if ! command -v man >/dev/null; then man_opt=--man=no; note "no man: verify skips Documentation="; fi
# verify exits 0 on an unknown key or a value it ignores: any line it prints fails.
out=$(cd /usr/lib/systemd/system && systemd-analyze verify "$man_opt" switchyard-edge.service switchyard-connector.service \
	switchyard-connector@vnet1.service switchyard-client.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify complains: $out"
note "systemd-analyze verify: the units pass, without a warning"
worse=
for u in $units; do
	line=$(systemd-analyze security --offline=true --no-pager "/usr/lib/systemd/system/$u" 2>&1 | grep 'Overall exposure level' || true)
	level=$(echo "$line" | sed -E 's/.*: [0-9.]+ ([A-Z]+).*/\1/')
	score=$(echo "$line" | sed -E 's/.*: ([0-9.]+) [A-Z]+.*/\1/')
	printf 'deb-check: systemd-analyze security %-32s %s %s\n' "$u" "$score" "$level"
	case $level in
	PERFECT | SAFE | OK) ;;
	*) worse+=" $u($score $level)" ;;
	esac
done
[ -z "$worse" ] || fail "units score worse than OK:$worse"

# What the daemons and the operator would have made: state dirs, a per-vnet
# connector's environment file, an enabled unit. A purge removes them too.
install -d -m 0700 -o switchyard -g switchyard /var/lib/switchyard
echo state >/var/lib/switchyard/admin.json
install -d -m 0700 /var/lib/switchyard-connector /var/lib/switchyard-connector-vnet1 /var/lib/switchyard-client
install -m 0600 /etc/switchyard/connector.env /etc/switchyard/connector-vnet1.env
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -s /usr/lib/systemd/system/switchyard-edge.service /etc/systemd/system/multi-user.target.wants/switchyard-edge.service

note "dpkg -P switchyard"
dpkg -P switchyard
installed=
left=$(leftovers)
[ -z "$left" ] || fail "left after dpkg -P: $(echo "$left" | tr '\n' ' ')"
[ "$(live)" = "$before" ] || fail "the package changed live sysctls"
note "ok: $version installed, checked, purged; nothing left"
