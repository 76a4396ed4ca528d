#!/usr/bin/env bats
# stdout/stderr: kept whole, blocking reads, interrupts, poll (docs/design.md §1).

load helpers

setup_file() {
	# A small memory threshold, so that spilling to disk is exercised.
	vp_mount "spill=256K"
	mkdir "$MNT/pool/o"
}
teardown_file() { vp_unmount; }

setup() { M=$MNT/pool/o; }

@test "cat stdout of a 3-second command blocks, then prints all of it" {
	echo 'echo start; sleep 3; echo end' > "$M/cmd"
	local t0=$SECONDS
	run timeout 20 cat "$M/stdout"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'start\nend')" ]
	[ $((SECONDS - t0)) -ge 2 ]
}

@test "timeout 2 cat stdout on a long command returns after about 2 s (EINTR)" {
	echo 'sleep 60' > "$M/cmd"
	local t0=$SECONDS
	run timeout 2 cat "$M/stdout"
	[ "$status" -eq 124 ]
	[ $((SECONDS - t0)) -lt 10 ]
	# the command itself is untouched
	[ "$(kv "$M/stat" state)" = running ]
	echo 'kill KILL' > "$M/ctl"
	[ "$(timeout 10 cat "$M/exit")" = 137 ]
}

@test "a blocked read of exit is interruptible too" {
	echo 'sleep 60' > "$M/cmd"
	run timeout 1 cat "$M/exit"
	[ "$status" -eq 124 ]
	echo kill > "$M/ctl"
	[ "$(timeout 10 cat "$M/exit")" = 143 ]
}

@test "stderr is kept apart from stdout" {
	echo 'echo out; echo err >&2; echo out2' > "$M/cmd"
	[ "$(cat "$M/stdout")" = "$(printf 'out\nout2')" ]
	[ "$(cat "$M/stderr")" = "err" ]
	[ "$(kv "$M/stat" stderr_bytes)" = 4 ]
}

@test "50 MB of output is kept whole" {
	echo 'seq 1 6500000' > "$M/cmd"
	timeout 120 cat "$M/stdout" > "$VP_DIR/got"
	seq 1 6500000 > "$VP_DIR/want"
	cmp "$VP_DIR/got" "$VP_DIR/want"
	[ "$(stat -c %s "$M/stdout")" = "$(stat -c %s "$VP_DIR/want")" ]
	[ "$(kv "$M/stat" stdout_bytes)" = "$(stat -c %s "$VP_DIR/want")" ]
	# read again, after the end, from the spilled file
	cmp "$M/stdout" "$VP_DIR/want"
	rm -f "$VP_DIR/got" "$VP_DIR/want"
}

@test "binary output survives unchanged" {
	echo 'i=0; while [ $i -lt 256 ]; do printf "\\$(printf %o $i)"; i=$((i+1)); done' > "$M/cmd"
	timeout 20 cat "$M/stdout" > "$VP_DIR/bin"
	[ "$(stat -c %s "$VP_DIR/bin")" = 256 ]
	[ "$(od -An -tu1 -j255 "$VP_DIR/bin" | tr -d ' ')" = 255 ]
}

@test "st_size of stdout grows while the command runs" {
	echo 'echo 12345; sleep 2; echo 67890' > "$M/cmd"
	wait_for '[ "$(stat -c %s "$M/stdout")" = 6 ]'
	cat "$M/exit" >/dev/null
	[ "$(stat -c %s "$M/stdout")" = 12 ]
}

@test "O_NONBLOCK read gets EAGAIN, poll wakes when output arrives" {
	[ -x "$POLLCHECK" ]
	echo 'sleep 1; echo hi; sleep 1' > "$M/cmd"
	run timeout 20 "$POLLCHECK" "$M/stdout" 10000
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "first=EAGAIN" ]
	[[ "${lines[1]}" == "poll=POLLIN"* ]]
	[ "${lines[2]}" = "data=hi" ]
	cat "$M/exit"
}

@test "poll on exit wakes when the command ends" {
	echo 'sleep 1; exit 7' > "$M/cmd"
	run timeout 20 "$POLLCHECK" "$M/exit" 10000
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "first=EAGAIN" ]
	[ "${lines[2]}" = "data=7" ]
}

@test "tail -f follows a long job" {
	echo 'for i in 1 2 3; do echo line$i; sleep 0.5; done' > "$M/cmd"
	run timeout 10 tail -n +1 -f "$M/stdout"
	[[ "$output" == *line1*line2*line3* ]]
}

@test "readers that come after the end get everything, then EOF" {
	echo 'printf "a\\nb\\n"' > "$M/cmd"
	cat "$M/exit" >/dev/null
	[ "$(cat "$M/stdout")" = "$(printf 'a\nb')" ]
	[ "$(cat "$M/stdout")" = "$(printf 'a\nb')" ]
	[ "$(head -c 1 "$M/stdout")" = a ]
}

@test "stdout cannot be written" {
	run bash -c "echo x > '$M/stdout'"
	[ "$status" -ne 0 ]
}

@test "a full spill disk: readers get what was kept, then EIO; stat says why; stderr is unharmed" {
	local small
	small=$(mktemp -d /tmp/vpfs-small.XXXXXX)
	mount -t tmpfs -o size=1M tmpfs "$small"
	VP_MOUNT2_PREFIX="env TMPDIR=$small" vp_mount2 "min=1,spill=64K"
	local m=$MNT2/pool/full
	mkdir "$m"
	echo 'seq 1 1000000; echo done >&2' > "$m/cmd"
	[ "$(cat "$m/exit")" = 0 ]
	run cat "$m/stdout"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	# what was kept is a true prefix of the output: no hole
	local kept
	kept=$(kv "$m/stat" stdout_bytes)
	[ "$kept" -ge 65536 ] && [ "$kept" -lt 6888896 ]
	head -c "$kept" "$m/stdout" 2>/dev/null | cmp - <(seq 1 1000000 | head -c "$kept")
	[[ "$(kv "$m/stat" error)" == "stdout output lost after $kept bytes: No space left on device" ]]
	[ "$(cat "$m/stderr")" = done ]
	grep -q "full: stdout output lost" "$D2/log"
	# the next command starts clean
	echo 'echo ok' > "$m/cmd"
	[ "$(cat "$m/stdout")" = ok ]
	[ -z "$(kv "$m/stat" error)" ]
	rmdir "$m"
	vp_unmount2
	umount "$small"
	rm -rf "$D2" "$small"
}
