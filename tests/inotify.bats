#!/usr/bin/env bats
# inotify on the tree (docs/design.md §1 inotify): the daemon's self-operations.

load helpers

setup_file() {
	vp_mount
	mkdir "$MNT/pool/w"
}
teardown_file() { vp_unmount; }

setup() { M=$MNT/pool/w; }

# Start inotifywait in the background and wait until its watch is set.
watch() { # watch OUTFILE ARGS...
	local out=$1
	shift
	timeout 20 inotifywait "$@" > "$out" 2> "$out.err" &
	WATCHER=$!
	wait_for "grep -q 'Watches established' '$out.err'"
}

@test "inotifywait -e close_write stat returns when the command ends" {
	watch "$VP_DIR/ev" -e close_write "$M/stat"
	local t0
	t0=$(date +%s%N)
	echo 'sleep 1' > "$M/cmd"
	local rc=0
	wait $WATCHER || rc=$?
	[ "$rc" -eq 0 ]
	local ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$ms" -ge 800 ]
	grep -q 'CLOSE_WRITE' "$VP_DIR/ev"
	# the event comes after the end: stat already says so
	[ "$(kv "$M/stat" state)" = exited ]
}

@test "the self-operation leaves stat's content alone" {
	vp_run w 'exit 4'
	sleep 0.3
	[ "$(kv "$M/stat" exit_code)" = 4 ]
	[ "$(kv "$M/stat" state)" = exited ]
}

@test "inotifywait -e modify stdout sees output" {
	echo 'sleep 0.5; echo hi; sleep 0.5' > "$M/cmd"
	watch "$VP_DIR/ev2" -e modify "$M/stdout"
	local rc=0
	wait $WATCHER || rc=$?
	[ "$rc" -eq 0 ]
	grep -q 'MODIFY' "$VP_DIR/ev2"
	cat "$M/exit"
}

@test "inotifywait -m on stderr: a burst of output gives few events" {
	# each command's stderr is a new file: watch it once the command started
	echo 'sleep 1; for i in $(seq 1 200); do echo $i >&2; sleep 0.005; done' > "$M/cmd"
	timeout 20 inotifywait -m -e modify "$M/stderr" > "$VP_DIR/ev3" 2> "$VP_DIR/ev3.err" &
	local w=$!
	wait_for "grep -q 'Watches established' '$VP_DIR/ev3.err'"
	cat "$M/exit" >/dev/null
	sleep 0.5
	kill $w
	local n d
	n=$(grep -c MODIFY "$VP_DIR/ev3")
	d=$(kv "$M/stat" duration_ms)
	echo "events: $n in $d ms"
	[ "$n" -ge 1 ]
	# rate-limited (≤ 10/s per file), not one per write
	[ "$n" -le $((d / 100 + 3)) ]
	[ "$n" -lt 200 ]
}

@test "a watcher loop sees every command end" {
	timeout 30 inotifywait -m -e close_write "$M/stat" > "$VP_DIR/ev4" 2> "$VP_DIR/ev4.err" &
	local w=$!
	wait_for "grep -q 'Watches established' '$VP_DIR/ev4.err'"
	for i in 1 2 3; do vp_run w "echo $i"; sleep 0.3; done
	wait_for '[ "$(grep -c CLOSE_WRITE "$VP_DIR/ev4")" -ge 3 ]'
	kill $w
}
