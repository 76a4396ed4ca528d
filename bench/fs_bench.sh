#!/usr/bin/env bash
# Tree benchmarks of vmpoolfs (docs/benchmarks.md, "tree"):
#   - mkdir pool/NAME: warm hit and miss (p50/p95), from the shell (which
#     adds a fork/exec of /bin/mkdir) and as mkdir(2) alone (bench/fs_lat)
#   - `echo true > cmd; cat exit` round trip (p50/p95), from the shell and
#     as open/write/close + open/read/close alone (bench/fs_lat)
#   - root/: sequential write then read of SIZE_MB, next to sshfs on a local
#     sftp-server over the same kind of storage (tmpfs on both sides)
#   - commands/s with 1, 2, 4, 8 machines
#   - tree walks in root/: `ls -l` of a 10 000-entry directory and `find`
#     over 100 000 files, next to sshfs and the host's own tmpfs
# Usage: bench/fs_bench.sh [BUILDDIR]  (needs root, sshfs, openssh-sftp-server)
# Env: N (samples, 200), SIZE_MB (256), SECS (seconds per commands/s run, 5),
# REPS (runs of each transfer and walk, 5), SECTIONS (a subset of
# "lat xfer cmds walk", all by default).
set -euo pipefail
B=${1:-build}
VMPOOLFS=${VMPOOLFS:-$B/fs/vmpoolfs}
IMAGE=${VMPOOL_IMAGE:-$B/image}
N=${N:-200}
SIZE_MB=${SIZE_MB:-256}
SECS=${SECS:-5}
SFTP_SERVER=${SFTP_SERVER:-/usr/lib/openssh/sftp-server}
FS_LAT=${FS_LAT:-$B/bench/fs_lat}
REPS=${REPS:-5}
SECTIONS=${SECTIONS:-lat xfer cmds walk}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }

work=$(mktemp -d /tmp/fs_bench.XXXXXX)
mnts=()
cleanup() {
	for m in "${mnts[@]}"; do
		for d in "$m"/pool/*/; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	umount "$work/sftpdata" 2>/dev/null || true
	umount "$work/hostfs" 2>/dev/null || true
	sleep 0.5
	rm -rf "$work"
}
trap cleanup EXIT

mount_vp() { # mount_vp DIR OPTS
	mkdir -p "$1"
	"$VMPOOLFS" -o "image=$IMAGE,$2" "$1" 2>/dev/null
	mnts+=("$1")
}
kv() { sed -n "s/^$2=//p" "$1"; }
us() { # microseconds since the epoch, no fork
	local t=${EPOCHREALTIME/./}
	echo "$t"
}
# p50 and p95 of a file of microsecond samples, as "p50 p95" in ms
pct() {
	sort -n "$1" | awk '{a[NR]=$1} END {
		i50 = int(NR * 0.50 + 0.5); if (i50 < 1) i50 = 1
		i95 = int(NR * 0.95 + 0.5); if (i95 < 1) i95 = 1
		printf "%.3f ms | %.3f ms", a[i50] / 1000, a[i95] / 1000 }'
}
wait_idle() { # wait until the pool has a warm machine and nothing in flight
	local i
	for i in $(seq 1 400); do
		[ "$(kv "$1/stats" idle)" -ge 1 ] && [ "$(kv "$1/stats" resetting)" = 0 ] &&
			[ "$(kv "$1/stats" creating)" = 0 ] && return 0
		sleep 0.005
	done
}

echo "# vmpoolfs tree benchmarks, $(date -u +%Y-%m-%d), $(uname -r), $(nproc) cores"
echo

V=$work/vp
mount_vp "$V" "min=1"

# sshfs talks to a local sftp-server through a stand-in for ssh; both sides
# store their files in tmpfs (the guest's upper layer is tmpfs).
sshfs_up() {
	[ -e "$work/fake-ssh" ] && return 0
	mkdir -p "$work/sftpdata" "$work/ssh"
	mount -t tmpfs -o size=$((SIZE_MB * 2))m tmpfs "$work/sftpdata"
	printf '#!/bin/sh\nexec %s\n' "$SFTP_SERVER" > "$work/fake-ssh"
	chmod +x "$work/fake-ssh"
	sshfs -o "ssh_command=$work/fake-ssh" "localhost:$work/sftpdata" "$work/ssh"
	mnts+=("$work/ssh")
}

if want lat; then
# ---- mkdir: hit and miss ------------------------------------------------
: > "$work/hit"
for i in $(seq 1 "$N"); do
	wait_idle "$V"
	t0=$(us)
	mkdir "$V/pool/h"
	t1=$(us)
	echo $((t1 - t0)) >> "$work/hit"
	rmdir "$V/pool/h"
done
# Misses: with min=0 and machines kept acquired, no idle machine exists, so
# each mkdir makes one on the caller's path. Batches of 20; idle=0 expires
# the released ones, and the first mkdir of a batch (which evicts them) is
# not counted.
VM=$work/vpmiss
mount_vp "$VM" "min=0,idle=0"
: > "$work/miss"
got=0
while [ "$got" -lt "$N" ]; do
	for i in $(seq 0 20); do
		t0=$(us)
		mkdir "$VM/pool/m$i"
		t1=$(us)
		[ "$i" -gt 0 ] && [ "$got" -lt "$N" ] && { echo $((t1 - t0)) >> "$work/miss"; got=$((got + 1)); }
	done
	rmdir "$VM"/pool/m*
	sleep 0.05
done
# mkdir(2) alone, timed in C around the call (same wait for a warm machine).
read -r _ lat50 lat95 < <("$FS_LAT" "$V" "$N" mkdir)
echo "| tree (n=$N) | p50 | p95 |"
echo "|---|---|---|"
echo "| mkdir pool/NAME, warm hit (shell \`mkdir\`) | $(pct "$work/hit") |"
echo "| mkdir(2) pool/NAME, warm hit | $lat50 ms | $lat95 ms |"
echo "| mkdir pool/NAME, miss (machine made on the caller's path) | $(pct "$work/miss") |"
fusermount3 -u "$VM"

# ---- command round trip ---------------------------------------------------
mkdir "$V/pool/rt"
for i in $(seq 1 20); do echo true > "$V/pool/rt/cmd"; cat "$V/pool/rt/exit" > /dev/null; done
: > "$work/rt"
for i in $(seq 1 "$N"); do
	t0=$(us)
	echo true > "$V/pool/rt/cmd"
	cat "$V/pool/rt/exit" > /dev/null
	t1=$(us)
	echo $((t1 - t0)) >> "$work/rt"
done
# The same with the shell's own read instead of cat: no fork/exec in the loop.
: > "$work/rt2"
for i in $(seq 1 "$N"); do
	t0=$(us)
	echo true > "$V/pool/rt/cmd"
	read -r code < "$V/pool/rt/exit"
	t1=$(us)
	echo $((t1 - t0)) >> "$work/rt2"
done
echo "| \`echo true > cmd; cat exit\` | $(pct "$work/rt") |"
echo "| \`echo true > cmd; read code < exit\` (no fork) | $(pct "$work/rt2") |"
read -r _ lat50 lat95 < <("$FS_LAT" "$V" "$N" rt)
echo "| round trip as syscalls (open/write/close cmd, open/read/close exit) | $lat50 ms | $lat95 ms |"
echo
fi

if want xfer; then
# ---- root/ sequential transfer, next to sshfs ------------------------------
sshfs_up

xfer() { # xfer FILE → "write_MBps read_MBps"
	local f=$1 t0 t1 t2 t3
	sync
	t0=$(us)
	dd if=/dev/zero of="$f" bs=1M count="$SIZE_MB" conv=fsync status=none
	t1=$(us)
	echo 3 > /proc/sys/vm/drop_caches
	t2=$(us)
	dd if="$f" of=/dev/null bs=1M status=none
	t3=$(us)
	rm -f "$f"
	awk -v s="$SIZE_MB" -v w=$((t1 - t0)) -v r=$((t3 - t2)) \
		'BEGIN { printf "%.0f %.0f\n", s * 1.048576 / (w / 1e6), s * 1.048576 / (r / 1e6) }'
}
mkdir "$V/pool/x"
# REPS runs of each, alternating vmpoolfs and sshfs so that both see the
# same moments of a shared host; best and median of each.
: > "$work/xfer"
for rep in $(seq 1 "$REPS"); do
	echo "vp $(xfer "$V/pool/x/root/tmp/big")" >> "$work/xfer"
	echo "ss $(xfer "$work/ssh/big")" >> "$work/xfer"
done
stat_of() { # stat_of KIND COLUMN → "best median"
	awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$work/xfer" | sort -n |
		awk '{ a[NR] = $1 } END { print a[NR], a[int((NR + 1) / 2)] }'
}
row() { # row NAME COLUMN
	read -r vb vm < <(stat_of vp "$2")
	read -r sb sm < <(stat_of ss "$2")
	awk -v n="$1" -v vb="$vb" -v vm="$vm" -v sb="$sb" -v sm="$sm" 'BEGIN {
		printf "| %s | %d / %d MB/s | %d / %d MB/s | %.2fx / %.2fx |\n", n, vb, vm, sb, sm, vb / sb, vm / sm }'
}
echo "| root/ sequential, ${SIZE_MB} MiB, dd bs=1M, best / median of $REPS | vmpoolfs | sshfs (local sftp-server) | ratio |"
echo "|---|---|---|---|"
row "write (conv=fsync)" 2
row "read (caches dropped)" 3
echo
fi

if want cmds; then
# ---- commands/s with 1, 2, 4, 8 machines ------------------------------------
loop() { # loop NAME END_US → count
	local c=0 m=$V/pool/$1
	while [ "$(us)" -lt "$2" ]; do
		echo true > "$m/cmd"
		cat "$m/exit" > /dev/null
		c=$((c + 1))
	done
	echo "$c"
}
echo "| machines | commands/s (\`echo true > cmd; cat exit\` loops, ${SECS} s) |"
echo "|---|---|"
for k in 1 2 4 8; do
	for i in $(seq 1 "$k"); do mkdir "$V/pool/c$i"; done
	end=$(($(us) + SECS * 1000000))
	for i in $(seq 1 "$k"); do loop "c$i" "$end" > "$work/cnt$i" & done
	wait
	total=0
	for i in $(seq 1 "$k"); do total=$((total + $(cat "$work/cnt$i"))); done
	awk -v t="$total" -v s="$SECS" -v k="$k" 'BEGIN { printf "| %d | %.0f |\n", k, t / s }'
	for i in $(seq 1 "$k"); do rmdir "$V/pool/c$i"; done
	wait_idle "$V"
done
echo
fi

if want walk; then
# ---- tree walks: ls -l of 10 000 entries, find over 100 000 files ----------
# The same tree (ls/ with 10 000 empty files; tree/ with 100 directories of
# 1 000) in a guest's root/, on sshfs (host tmpfs behind a local
# sftp-server) and on a host tmpfs walked directly. Kernel caches are
# dropped before every run, so each walk looks every name up again through
# its filesystem; sshfs keeps its own directory and attribute caches (20 s)
# in its process, which drop_caches does not empty.
sshfs_up
mkdir -p "$work/hostfs"
mount -t tmpfs tmpfs "$work/hostfs"
mktree='mkdir -p "$R/ls" && cd "$R/ls" && seq 1 10000 | xargs touch &&
	for d in $(seq 1 100); do mkdir -p "$R/tree/d$d" && (cd "$R/tree/d$d" && seq 1 1000 | xargs touch); done'
mkdir "$V/pool/w"
echo "R=/walk; $mktree" > "$V/pool/w/cmd"
[ "$(cat "$V/pool/w/exit")" = 0 ] || { cat "$V/pool/w/stderr" >&2; exit 1; }
R=$work/sftpdata/walk sh -c "$mktree"
R=$work/hostfs/walk sh -c "$mktree"
walk1() { # walk1 KIND DIR → "KIND ls_us find_us"
	local t0 t1 t2 t3 n
	echo 3 > /proc/sys/vm/drop_caches
	t0=$(us)
	n=$(ls -l "$2/ls" | wc -l)
	t1=$(us)
	[ "$n" = 10001 ] || echo "$1: ls -l gave $n lines" >&2
	echo 3 > /proc/sys/vm/drop_caches
	t2=$(us)
	n=$(find "$2/tree" | wc -l)
	t3=$(us)
	[ "$n" = 100101 ] || echo "$1: find gave $n lines" >&2
	echo "$1 $((t1 - t0)) $((t3 - t2))"
}
# Alternating, as for transfers: the three see the same moments of the host.
: > "$work/walk"
for rep in $(seq 1 "$REPS"); do
	walk1 vp "$V/pool/w/root/walk" >> "$work/walk"
	walk1 ss "$work/ssh/walk" >> "$work/walk"
	walk1 tm "$work/hostfs/walk" >> "$work/walk"
done
wstat() { # wstat KIND COLUMN → "best median" in ms
	awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$work/walk" | sort -n |
		awk '{ a[NR] = $1 } END { printf "%.1f %.1f\n", a[1] / 1000, a[int((NR + 1) / 2)] / 1000 }'
}
wrow() { # wrow NAME COLUMN
	read -r vb vm < <(wstat vp "$2")
	read -r sb sm < <(wstat ss "$2")
	read -r tb tm < <(wstat tm "$2")
	awk -v n="$1" -v vb="$vb" -v vm="$vm" -v sb="$sb" -v sm="$sm" -v tb="$tb" -v tm="$tm" 'BEGIN {
		printf "| %s | %.1f / %.1f ms | %.1f / %.1f ms | %.1f / %.1f ms | %.2fx / %.2fx | %.2fx / %.2fx |\n",
			n, vb, vm, sb, sm, tb, tm, sb / vb, sm / vm, vb / tb, vm / tm }'
}
echo "| root/ walks, kernel caches dropped, best / median of $REPS | vmpoolfs | sshfs (local sftp-server) | host tmpfs | sshfs time / ours | ours / host tmpfs |"
echo "|---|---|---|---|---|---|"
wrow "\`ls -l\` of 10 000 entries" 2
wrow "\`find\` over 100 000 files (100 dirs)" 3
rmdir "$V/pool/w"
fi
