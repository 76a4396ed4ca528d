#!/usr/bin/env bats
# One machine never stalls another: an agent that stops answering (here
# SIGSTOP of its host process, as a hung or frozen guest looks to the
# host) must not hold any other tenant's mkdir, command, read or rmdir,
# nor the mount's workers; it is declared dead after the ping bound and
# killed host-side. Each bound below is one of isolation, not speed:
# generous, but firm.

load helpers

PING=5

setup_file() { vp_mount "ping=$PING,min=2"; }
# The mount then unmounts cleanly: the daemon exits 0, no process of it is
# left (vp_unmount), and no cgroup either.
teardown_file() {
	local pid=$VPID
	vp_unmount
	[ -z "$(find /sys/fs/cgroup -maxdepth 5 -type d -name "vmpoolfs.$pid.*" 2>/dev/null)" ]
}

# Runs "$@" and fails when it took more than LIMIT_MS (default 1000):
# within LIMIT_MS ...
within() {
	local lim=1000 t0 rc=0 ms
	if [[ $1 =~ ^[0-9]+$ ]]; then lim=$1; shift; fi
	t0=$(date +%s%N)
	"$@" || rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ -z "${STALL_TRACE:-}" ] || echo "# $ms ms: $*" >&3
	if [ "$ms" -gt "$lim" ]; then
		echo "took $ms ms (bound $lim ms): $*" >&2
		return 1
	fi
	return $rc
}

# A machine whose agent is stopped, with a command running: stop_machine NAME
stop_machine() {
	mkdir "$MNT/pool/$1"
	ls "$MNT/pool/$1/root/etc" > /dev/null # root/ is known to the kernel
	echo 'sleep 1000' > "$MNT/pool/$1/cmd"
	HUNG_PID=$(kv "$MNT/pool/$1/stat" host_pid)
	[ -n "$HUNG_PID" ]
	kill -STOP "$HUNG_PID"
}

# One full life of another machine, every step bounded: other_life NAME
other_life() {
	local d=$MNT/pool/$1
	# A warm machine is there (a boot on a loaded host is not what is
	# measured here; the pool never waits on an acquired machine).
	wait_for "[ \"\$(kv '$MNT/stats' idle)\" -ge 1 ]"
	within mkdir "$d"
	within bash -c "echo 'echo hi-$1' > '$d/cmd'"
	[ "$(within cat "$d/exit")" = 0 ]
	[ "$(within cat "$d/stdout")" = "hi-$1" ]
	within ls "$d/root/etc" > /dev/null
	within bash -c "echo data > '$d/root/tmp/f'"
	[ "$(within cat "$d/root/tmp/f")" = data ]
	within grep -q state=exited "$d/stat"
	within rmdir "$d"
}

@test "a stopped agent with 80 scanners in its root/ stalls no other machine, and dies after the ping bound" {
	stop_machine hung
	local i
	# A reader blocked at the end of the running command's output.
	(rc=0; cat "$MNT/pool/hung/stdout" > /dev/null 2> "$VP_DIR/reader.err" || rc=$?; echo $rc > "$VP_DIR/reader.rc") &
	# 80 host processes scan its root/, each stat a request to the agent
	# (root/'s attributes are never cached, and the kernel sends lookups
	# in one directory one at a time): they may wait or fail, never hang.
	for i in $(seq 1 80); do
		local p=$MNT/pool/hung/root/
		[ $((i % 4)) != 0 ] || p=$MNT/pool/hung/root/x$i
		(rc=0; timeout 60 stat "$p" > /dev/null 2>&1 || rc=$?; echo $rc > "$VP_DIR/scan.$i") &
	done
	sleep 0.3
	# Everyone else goes on while it is stuck.
	for i in 1 2 3; do
		other_life "other$i"
	done
	within ls "$MNT/pool" > /dev/null
	within cat "$MNT/stats" > /dev/null
	# All of that while it was still stuck, not yet declared dead: this
	# is isolation, not its death freeing everyone.
	[ -z "${STALL_TRACE:-}" ] || sed 's/^/# /' "$MNT/pool/hung/stat" >&3
	if ! grep -q state=running "$MNT/pool/hung/stat"; then
		skip "the other machines' work outlasted the ping bound: too slow a host to tell"
	fi

	# After the bound (plus the watch's tick) it is dead, and says why.
	wait_for "grep -q state=error '$MNT/pool/hung/stat'"
	grep -q "error=agent did not answer for $PING s" "$MNT/pool/hung/stat"
	# The blocked reader ended with the death, not later.
	within 3000 wait_for "[ -s '$VP_DIR/reader.rc' ]"
	[ "$(cat "$VP_DIR/reader.rc")" != 0 ]
	grep -q "Input/output error" "$VP_DIR/reader.err"
	run cat "$MNT/pool/hung/exit"
	[[ $output == *"Input/output error"* ]]
	# Killed host-side: no process of it is left, stopped or not.
	wait_for "! kill -0 $HUNG_PID 2>/dev/null || grep -q '^State:.*Z' /proc/$HUNG_PID/status"
	# The scanners all ended.
	for i in $(seq 1 80); do
		wait_for "[ -s '$VP_DIR/scan.$i' ]"
		[ "$(cat "$VP_DIR/scan.$i")" != 124 ]
	done
	within rmdir "$MNT/pool/hung"
	other_life after
}

@test "rmdir of a stopped machine returns at once and holds no one" {
	stop_machine gone
	mkdir "$MNT/pool/busy"
	(stat "$MNT/pool/gone/root/etc/nothing" > /dev/null 2>&1 &)
	sleep 0.2
	within rmdir "$MNT/pool/gone"
	other_life next
	within rmdir "$MNT/pool/busy"
	# The released machine is killed by its reset, stopped or not.
	wait_for "! kill -0 $HUNG_PID 2>/dev/null || grep -q '^State:.*Z' /proc/$HUNG_PID/status"
}

@test "one machine's root/ holds at most its share of the workers: the rest get EAGAIN at once" {
	stop_machine share
	local i n=0
	# 40 stats at once, each a GETATTR to the agent: the first threads/4
	# = 16 wait on it (up to a call's deadline), the others are refused
	# at once.
	for i in $(seq 1 40); do
		(within stat "$MNT/pool/share/root/" > /dev/null 2> "$VP_DIR/share.$i" || true) &
	done
	other_life beside
	wait
	for i in $(seq 1 40); do
		if grep -q "Resource temporarily unavailable" "$VP_DIR/share.$i"; then
			n=$((n + 1))
			# refused, and at once
			! grep -q "took" "$VP_DIR/share.$i"
		fi
	done
	echo "refused: $n of 40"
	[ "$n" -ge 1 ]
	within rmdir "$MNT/pool/share"
}

@test "without pings, ctl kill and a timeout on a stopped agent end the command host-side" {
	vp_mount2 "ping=0,min=1"
	mkdir "$MNT2/pool/k"
	echo 'sleep 1000' > "$MNT2/pool/k/cmd"
	local hp
	hp=$(kv "$MNT2/pool/k/stat" host_pid)
	kill -STOP "$hp"
	# The agent gets a grace (3 s) to act on the kill, then the host does.
	within 6000 bash -c "echo kill > '$MNT2/pool/k/ctl'"
	run timeout 10 cat "$MNT2/pool/k/exit"
	[[ $output == *"Input/output error"* ]]
	grep -q state=error "$MNT2/pool/k/stat"
	grep -q "error=agent did not answer ctl kill" "$MNT2/pool/k/stat"
	wait_for "! kill -0 $hp 2>/dev/null || grep -q '^State:.*Z' /proc/$hp/status"
	rmdir "$MNT2/pool/k"

	mkdir "$MNT2/pool/t"
	echo 'timeout 1' > "$MNT2/pool/t/ctl"
	echo 'sleep 1000' > "$MNT2/pool/t/cmd"
	hp=$(kv "$MNT2/pool/t/stat" host_pid)
	kill -STOP "$hp"
	run within 8000 timeout 10 cat "$MNT2/pool/t/exit"
	[[ $output == *"Input/output error"* ]]
	grep -q "error=command timeout (1 s) not enforced by the agent" "$MNT2/pool/t/stat"
	wait_for "! kill -0 $hp 2>/dev/null || grep -q '^State:.*Z' /proc/$hp/status"
	rmdir "$MNT2/pool/t"
	local kids
	kids=$(vp_descendants "$PID2")
	vp_unmount2 "$kids"
	# Nothing of it is left: no process (above), no cgroup.
	[ -z "$(find /sys/fs/cgroup -maxdepth 5 -type d -name "vmpoolfs.$PID2.*" 2>/dev/null)" ]
	rm -rf "$D2"
}

