#!/usr/bin/env bats
# A dead guest never hangs a reader; shutdown leaves nothing behind.

load helpers

setup_file() { vp_mount; }
teardown_file() { vp_unmount; }

@test "killing the agent gives EIO to a blocked reader, state=error, and rmdir still releases" {
	mkdir "$MNT/pool/d"
	local M=$MNT/pool/d hp
	hp=$(kv "$M/stat" host_pid)
	[ -n "$hp" ] && [ "$hp" -gt 0 ]
	# the agent is a process below the daemon
	vp_descendants "$VPID" | grep -qx "$hp"
	echo 'echo before; sleep 300' > "$M/cmd"
	wait_for '[ "$(kv "$M/stat" stdout_bytes)" = 7 ]'
	timeout 20 cat "$M/stdout" > "$VP_DIR/out" 2> "$VP_DIR/err" &
	local reader=$!
	timeout 20 cat "$M/exit" > /dev/null 2> "$VP_DIR/err2" &
	local reader2=$!
	sleep 0.5
	kill -9 "$hp"
	local rc=0 rc2=0
	wait $reader || rc=$?
	wait $reader2 || rc2=$?
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
	[ "$rc2" -ne 0 ] && [ "$rc2" -ne 124 ]
	[ "$(cat "$VP_DIR/out")" = before ] # the data first, then EIO
	grep -q "Input/output error" "$VP_DIR/err"
	grep -q "Input/output error" "$VP_DIR/err2"
	[ "$(kv "$M/stat" state)" = error ]
	[ -n "$(kv "$M/stat" error)" ]
	# the machine's log says how the agent ended
	grep -q "^\[vmpoolfs: the agent (the machine's PID 1) was killed by signal 9 (Killed); processes killed by the memory limit in this life: 0\]$" "$M/log"
	# new commands fail
	run bash -c "echo true > '$M/cmd'"
	[ "$status" -ne 0 ]
	run cat "$M/exit"
	[ "$status" -ne 0 ]
	# release works and the pool replaces the machine
	local ev
	ev=$(kv "$MNT/stats" evictions)
	rmdir "$M"
	wait_for '[ "$(kv "$MNT/stats" evictions)" -gt "$ev" ]'
	mkdir "$MNT/pool/d2"
	vp_run d2 'echo alive'
	[ "$(cat "$MNT/pool/d2/stdout")" = alive ]
	rmdir "$MNT/pool/d2"
}

@test "killing an idle machine's agent: the next command fails cleanly" {
	mkdir "$MNT/pool/e"
	vp_kill_agent "$MNT/pool/e"
	run bash -c "echo true > '$MNT/pool/e/cmd'"
	[ "$status" -ne 0 ]
	[ "$(kv "$MNT/pool/e/stat" state)" = error ]
	rmdir "$MNT/pool/e"
}

@test "a dead guest's root/ fails instead of hanging" {
	mkdir "$MNT/pool/f"
	ls "$MNT/pool/f/root/" > /dev/null
	vp_kill_agent "$MNT/pool/f"
	run timeout 20 ls "$MNT/pool/f/root/bin"
	[ "$status" -ne 124 ]
	rmdir "$MNT/pool/f"
}

# A second daemon, stopped by signal SIG while busy: it unmounts, exits 0
# and leaves no process. (A background job inherits SIGINT ignored, and
# libfuse keeps an ignored signal ignored, as a shell user expects; so the
# daemon is started with the default action, as from a terminal.)
stop_busy_daemon_with() {
	local sig=$1 kids
	VP_MOUNT2_PREFIX="env --default-signal=$sig" vp_mount2 min=1
	mkdir "$MNT2/pool/a" "$MNT2/pool/b"
	echo 'sleep 300' > "$MNT2/pool/a/cmd"
	echo 'echo x' > "$MNT2/pool/b/cmd"
	timeout 20 cat "$MNT2/pool/a/stdout" > /dev/null 2>&1 &
	local reader=$!
	sleep 0.3
	kids=$(vp_descendants "$PID2")
	[ -n "$kids" ]
	kill -"$sig" "$PID2"
	local i rc=0
	for i in $(seq 1 400); do
		kill -0 "$PID2" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$PID2" 2>/dev/null; then
		kill -KILL "$PID2"
		umount -l "$MNT2"
		echo "vmpoolfs still running 20 s after SIG$sig" >&2
		false
	fi
	wait "$PID2" || rc=$?
	cat "$D2/log"
	run mountpoint -q "$MNT2"
	[ "$status" -ne 0 ]
	wait $reader || true
	vp_exited_clean "$rc" "$kids" "$D2/log"
	rm -rf "$D2"
}

@test "SIGTERM with machines in use: unmounts, exits 0, no process left" {
	stop_busy_daemon_with TERM
}

@test "SIGINT (Ctrl-C) with machines in use: unmounts, exits 0, no process left" {
	stop_busy_daemon_with INT
}

@test "rmdir then unmount leaves no agent process" {
	local kids
	vp_mount2 min=2
	mkdir "$MNT2/pool/a"
	vp_run "$MNT2/pool/a" 'sleep 100 & echo started'
	kids=$(vp_descendants "$PID2")
	rmdir "$MNT2/pool/a"
	vp_unmount2 "$kids"
	rm -rf "$D2"
}

@test "invalid options: clear message, exit 2" {
	run "$VMPOOLFS" -o min=abc /tmp
	[ "$status" -eq 2 ]
	[[ "$output" == *"min"* ]]
	run "$VMPOOLFS" -o mem=12Q /tmp
	[ "$status" -eq 2 ]
	run "$VMPOOLFS" -o backend=xen /tmp
	[ "$status" -eq 2 ]
	run "$VMPOOLFS" -o min=5,max=2 /tmp
	[ "$status" -eq 2 ]
	run "$VMPOOLFS" -o no_such_option /tmp
	[ "$status" -eq 2 ]
	run "$VMPOOLFS"
	[ "$status" -eq 2 ]
	run "$VMPOOLFS" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"max_machines"* ]]
	run "$VMPOOLFS" --version
	[ "$status" -eq 0 ]
	[[ "$output" == *"vmpoolfs "* ]]
}

@test "log shows what the machine's log file holds, and is the next user's own after a release" {
	local t
	t=$(mktemp -d /tmp/vpfs-log.XXXXXX)
	VP_MOUNT2_PREFIX="env TMPDIR=$t" vp_mount2 "min=0,max=1"
	mkdir "$MNT2/pool/a"
	local f
	f=$(echo "$t"/vmpool-ns-*/machine-*.log)
	[ -f "$f" ]
	# stands in for the agent's stderr (guests cannot reach that pipe)
	echo 'agent: something went wrong' >> "$f"
	[ "$(cat "$MNT2/pool/a/log")" = 'agent: something went wrong' ]
	[ "$(stat -c %s "$MNT2/pool/a/log")" = 28 ]
	rmdir "$MNT2/pool/a"
	run cat "$MNT2/pool/a/log"
	[ "$status" -ne 0 ]
	# the machine comes back reset: its log starts empty
	wait_for "[ \$(grep -c . '$MNT2/stats') -gt 0 ] && [ \"\$(kv '$MNT2/stats' idle)\" = 1 ]"
	mkdir "$MNT2/pool/b"
	[ -z "$(cat "$MNT2/pool/b/log")" ]
	rmdir "$MNT2/pool/b"
	vp_unmount2
	[ -z "$(ls -A "$t")" ]
	rm -rf "$D2" "$t"
}

@test "no writable \$TMPDIR: machines still work, log is empty, the daemon says why" {
	VP_MOUNT2_PREFIX="env TMPDIR=/nonexistent/vmpoolfs-test" vp_mount2 "min=1"
	grep -q "vmpoolfs: ns: no agent logs" "$D2/log"
	mkdir "$MNT2/pool/a"
	echo 'echo works' > "$MNT2/pool/a/cmd"
	[ "$(cat "$MNT2/pool/a/stdout")" = works ]
	[ -z "$(cat "$MNT2/pool/a/log")" ]
	rmdir "$MNT2/pool/a"
	vp_unmount2
	rm -rf "$D2"
}

@test "without -f: returns once mounted, serves, and exits at unmount; a failed start says why, status 1" {
	local d pid i
	d=$(mktemp -d /tmp/vpfs-bg.XXXXXX)
	mkdir "$d/mnt"
	run "$VMPOOLFS" -o "min=1,image=$VMPOOL_IMAGE" "$d/mnt"
	[ "$status" -eq 0 ]
	mountpoint -q "$d/mnt"
	pid=$(pgrep -f "^$VMPOOLFS -o min=1,image=$VMPOOL_IMAGE $d/mnt\$")
	[ -n "$pid" ]
	mkdir "$d/mnt/pool/a"
	echo 'echo from-the-background' > "$d/mnt/pool/a/cmd"
	[ "$(cat "$d/mnt/pool/a/stdout")" = from-the-background ]
	rmdir "$d/mnt/pool/a"
	fusermount3 -u "$d/mnt"
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	! kill -0 "$pid" 2>/dev/null
	run "$VMPOOLFS" -o "image=$d/no-such-image" "$d/mnt"
	[ "$status" -eq 1 ]
	[[ "$output" == *"no-such-image"* ]]
	! mountpoint -q "$d/mnt"
	rm -rf "$d"
}
