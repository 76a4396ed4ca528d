#!/usr/bin/env bats
# Many machines at once (issue 12): every machine held is released at
# unmount and at SIGTERM, a second SIGTERM during that teardown does not
# cut it short, and nothing is left: no cgroup, no process, no runtime
# directory. N is moderate so the suite stays quick under ASan; the
# figures at 1000 and 10 000 machines are bench/scale_bench.sh's.

load helpers

N=${VP_SCALE_N:-40}

# Mount a daemon of our own holding N machines, each of which answered a
# command and now runs sleep. Sets D2, MNT2, PID2 (vp_mount2) and KIDS.
hold_n() {
	vp_mount2 "min=0,max=1,max_machines=$((N + 2)),pids=16,nofile=256"
	local i
	for i in $(seq 1 "$N"); do
		mkdir "$MNT2/pool/s$i"
		echo "echo hi$i" > "$MNT2/pool/s$i/cmd"
		[ "$(cat "$MNT2/pool/s$i/exit")" = 0 ]
		[ "$(cat "$MNT2/pool/s$i/stdout")" = "hi$i" ]
		echo "exec sleep 100000" > "$MNT2/pool/s$i/cmd"
	done
	KIDS=$(vp_descendants "$PID2")
	[ "$(echo "$KIDS" | wc -w)" -ge "$N" ]
}

# Nothing of daemon PID is left: no cgroup named after it in any
# hierarchy, none of KIDS alive, no runtime directory of its pid.
nothing_left() {
	local pid=$1 left
	left=$(find /sys/fs/cgroup -maxdepth 6 -type d -name "vmpoolfs.$pid.*" 2>/dev/null || true)
	[ -z "$left" ] || { echo "cgroups left: $left" >&2; return 1; }
	left=$(ls -d "${TMPDIR:-/tmp}"/vmpool-*-"$pid".* 2>/dev/null || true)
	[ -z "$left" ] || { echo "runtime dirs left: $left" >&2; return 1; }
	local k
	for k in $KIDS; do
		if kill -0 "$k" 2>/dev/null; then
			echo "process $k left: $(cat /proc/$k/cmdline | tr '\0' ' ')" >&2
			return 1
		fi
	done
}

# The daemon PID2 exited 0, released every machine (nothing left, and its
# log says so) and its log holds no sanitizer report.
exited_releasing_all() {
	local rc=0
	wait "$PID2" || rc=$?
	[ "$rc" = 0 ] || { cat "$D2/log" >&2; return 1; }
	nothing_left "$PID2"
	grep -q "all machines released" "$D2/log"
	! grep -q "Sanitizer\|runtime error" "$D2/log"
}

@test "unmount with $N machines held, each running sleep: every one released" {
	hold_n
	fusermount3 -u "$MNT2"
	exited_releasing_all
	rm -rf "$D2"
}

@test "SIGTERM, then SIGTERM again during the teardown: it still completes" {
	hold_n
	kill -TERM "$PID2"
	sleep 0.05
	kill -TERM "$PID2" 2>/dev/null || true
	sleep 0.05
	kill -INT "$PID2" 2>/dev/null || true
	exited_releasing_all
	mountpoint -q "$MNT2" && umount -l "$MNT2"
	rm -rf "$D2"
}

@test "a max_machines the host cannot hold is refused at start, with the reason" {
	D2=$(mktemp -d /tmp/vpfs-bats-2.XXXXXX)
	mkdir "$D2/mnt"
	run "$VMPOOLFS" -f -o "max_machines=65536,image=$VMPOOL_IMAGE" "$D2/mnt"
	[ "$status" -ne 0 ]
	[[ "$output" == *"lower max_machines"* ]]
	! mountpoint -q "$D2/mnt"
	rm -rf "$D2"
}

@test "the daemon raises its RLIMIT_NOFILE soft limit to the hard limit, and says so" {
	D2=$(mktemp -d /tmp/vpfs-bats-2.XXXXXX)
	MNT2=$D2/mnt
	mkdir "$MNT2"
	(ulimit -Sn 512; exec "$VMPOOLFS" -f -o "min=0,image=$VMPOOL_IMAGE" "$MNT2" > "$D2/log" 2>&1) &
	PID2=$!
	wait_for "mountpoint -q '$MNT2' && [ -e '$MNT2/config' ]"
	soft=$(awk '/Max open files/ {print $4}' "/proc/$PID2/limits")
	hard=$(awk '/Max open files/ {print $5}' "/proc/$PID2/limits")
	[ "$soft" = "$hard" ]
	if [ "$hard" != 512 ]; then
		grep -q "RLIMIT_NOFILE soft limit raised from 512 to the hard limit $hard" "$D2/log"
	fi
	vp_unmount2
	rm -rf "$D2"
}
