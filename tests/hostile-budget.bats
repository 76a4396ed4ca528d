#!/usr/bin/env bats
# Per-machine budgets against a hostile guest: its output counts against
# output_max (never another machine's output, never $TMPDIR past the sum
# of the budgets), its CPU against cpus=, and pids/nofile are held to the
# host's pid_max and file-max at start. $TMPDIR is a small tmpfs of our own.

load helpers

OUT_MAX=1048576 # output_max below
MACHINES=3

setup_file() {
	SMALLTMP=$(mktemp -d /tmp/vpfs-budget-tmp.XXXXXX)
	mount -t tmpfs -o size=8m tmpfs "$SMALLTMP"
	export SMALLTMP
	TMPDIR=$SMALLTMP vp_mount "max_machines=$MACHINES,spill=64K,output_max=1M,cpus=0.5"
}

teardown_file() {
	vp_unmount
	umount "$SMALLTMP" && rmdir "$SMALLTMP"
}

# KiB used on the small tmpfs.
tmp_used_kb() {
	df -k --output=used "$SMALLTMP" | tail -n 1 | tr -d ' '
}

@test "config shows the budgets" {
	[ "$(kv "$MNT/config" output_max)" = $OUT_MAX ]
	[ "$(kv "$MNT/config" cpus)" = 0.500 ]
	pids=$(kv "$MNT/config" pids)
	nofile=$(kv "$MNT/config" nofile)
	[ "$pids" -ge 16 ] && [ "$nofile" -ge 64 ]
	# ... and the machine has them: RLIMIT_NOFILE inside, pids.max outside.
	mkdir "$MNT/pool/cfg"
	vp_run cfg 'ulimit -n; ulimit -Hn'
	[ "$(cat "$MNT/pool/cfg/stdout")" = "$(printf '%s\n%s' "$nofile" "$nofile")" ]
	hp=$(kv "$MNT/pool/cfg/stat" host_pid)
	pdir=$(sed -n 's/^[0-9]*:pids:\(.*\)/\1/p;s/^0::\(.*\)/\1/p' /proc/"$hp"/cgroup | head -n 1)
	pmax=$(cat /sys/fs/cgroup/pids"$pdir"/pids.max 2>/dev/null || cat /sys/fs/cgroup"$pdir"/pids.max)
	[ "$pmax" = "$pids" ]
	rmdir "$MNT/pool/cfg"
}

@test "an output flood keeps a true prefix of output_max; the machine beside it loses nothing" {
	mkdir "$MNT/pool/flood" "$MNT/pool/calm"
	: > "$BATS_FILE_TMPDIR/maxkb"
	( while :; do tmp_used_kb >> "$BATS_FILE_TMPDIR/maxkb"; sleep 0.05; done ) &
	sampler=$!
	# 50 MB: six times the tmpfs, fifty times the budget.
	echo 'yes flood | head -c 50000000; echo after >&2; exit 7' > "$MNT/pool/flood/cmd"
	echo 'seq 1 100000' > "$MNT/pool/calm/cmd"
	code=$(timeout 60 cat "$MNT/pool/flood/exit")
	timeout 20 cat "$MNT/pool/calm/exit" > /dev/null
	kill "$sampler"; wait "$sampler" 2>/dev/null || true
	# The flood's command was not killed: its output was dropped.
	[ "$code" = 7 ]
	[ "$(kv "$MNT/pool/flood/stat" state)" = exited ]
	[ "$(kv "$MNT/pool/flood/stat" stdout_bytes)" = $OUT_MAX ]
	[ "$(kv "$MNT/pool/flood/stat" stderr_bytes)" = 0 ]
	kv "$MNT/pool/flood/stat" error | grep -q "stdout output lost after $OUT_MAX bytes: output_max reached"
	# A true prefix, then EIO instead of EOF.
	run bash -c "cat '$MNT/pool/flood/stdout' 2>'$BATS_FILE_TMPDIR/err' | cmp - <(yes flood | head -c $OUT_MAX)"
	[ "$status" = 0 ]
	grep -q "Input/output error" "$BATS_FILE_TMPDIR/err"
	run cat "$MNT/pool/flood/stderr"
	[ "$status" -ne 0 ]
	# The calm machine's output is whole (it spilled too: 64K in memory).
	cmp "$MNT/pool/calm/stdout" <(seq 1 100000)
	[ -z "$(kv "$MNT/pool/calm/stat" error)" ]
	# $TMPDIR never held more than the budgets (+ 1 MiB for logs and slack).
	max=$(sort -n "$BATS_FILE_TMPDIR/maxkb" | tail -n 1)
	[ "$max" -le $(( (MACHINES * OUT_MAX + 1048576) / 1024 )) ]
	# A new command starts with the whole budget again.
	vp_run flood 'seq 3'
	[ "$(cat "$MNT/pool/flood/stdout")" = "$(seq 3)" ]
	[ -z "$(kv "$MNT/pool/flood/stat" error)" ]
	rmdir "$MNT/pool/flood" "$MNT/pool/calm"
}

@test "a CPU hog is held to cpus=0.5" {
	mkdir "$MNT/pool/hog"
	# Four busy loops for 3 s of wall time: without a limit they would use
	# up to 4 x 3 s of CPU; with 0.5 CPU at most 1.5 s (the margin is for
	# the first period and the shells around them).
	vp_run hog 'for i in 1 2 3 4; do timeout 3 sh -c "while :; do :; done" & done; wait; times'
	children=$(sed -n 2p "$MNT/pool/hog/stdout")
	secs=$(echo "$children" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/);
		printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }')
	echo "children: $children = $secs ms" >&2
	[ "$secs" -le 2250 ]
	# The kernel says it throttled the machine's cgroup.
	hp=$(kv "$MNT/pool/hog/stat" host_pid)
	cdir=$(sed -n 's/^[0-9]*:\(cpu\|cpu,cpuacct\):\(.*\)/\2/p;s/^0::\(.*\)/\1/p' /proc/"$hp"/cgroup | head -n 1)
	for f in /sys/fs/cgroup/cpu"$cdir"/cpu.stat /sys/fs/cgroup/cpu,cpuacct"$cdir"/cpu.stat \
		/sys/fs/cgroup"$cdir"/cpu.stat; do
		[ -r "$f" ] && break
	done
	[ "$(sed -n 's/^nr_throttled //p' "$f")" -gt 0 ]
	rmdir "$MNT/pool/hog"
}

@test "max_machines x pids over the host's pid_max: clamped at start, with the message" {
	pid_max=$(cat /proc/sys/kernel/pid_max)
	vp_mount2 "min=0,max_machines=64,pids=4194304"
	grep -q "pids clamped from 4194304 to" "$D2/log"
	pids=$(kv "$MNT2/config" pids)
	[ $((64 * pids)) -le $((pid_max / 2)) ]
	vp_unmount2
	rm -rf "$D2"
}

@test "machines that cannot fit even at the floors: refused with a clear message" {
	pid_max=$(cat /proc/sys/kernel/pid_max)
	[ $((pid_max / 2 / 65536)) -lt 16 ] || skip "pid_max $pid_max fits 65536 machines of 16 pids"
	d=$(mktemp -d /tmp/vpfs-bats-3.XXXXXX)
	mkdir "$d/mnt"
	run timeout 20 "$VMPOOLFS" -f -o "min=0,max_machines=65536,image=$VMPOOL_IMAGE" "$d/mnt"
	rmdir "$d/mnt" "$d"
	[ "$status" = 2 ]
	[[ "$output" == *"exceed half of the host's pid_max"*"lower max_machines"* ]]
}
