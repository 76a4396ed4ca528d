#!/usr/bin/env bats
# stdout/stderr as growing log files: seekable, st_size so far, followed by
# tail -f/-F, head, grep -m1, less +F, python and dd; status files' sizes;
# stdin after EOF; a command cut by rmdir (docs/usage.md, stdout).

load helpers

setup_file() {
	vp_mount
	mkdir "$MNT/pool/f"
}
teardown_file() { vp_unmount; }

setup() { M=$MNT/pool/f; }

# wait_for up to 30 s: tail -F looks at the name again after 5 polls
# (1 s each) with its open file unchanged.
wait_long() { wait_for "$1" || wait_for "$1" || wait_for "$1"; }

# Milliseconds since $1 (a date +%s%N).
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# A command printing line1..line$1, one every 0.3 s.
slow_lines() { echo "for i in \$(seq 1 $1); do echo line\$i; sleep 0.3; done" > "$M/cmd"; }

@test "tail -f shows the first line well before the command ends" {
	local t0
	t0=$(date +%s%N)
	slow_lines 12
	timeout 20 tail -f "$M/stdout" > "$VP_DIR/tf" 2> "$VP_DIR/tf.err" &
	local tp=$!
	wait_for "grep -q line1 '$VP_DIR/tf'"
	local ms
	ms=$(ms_since "$t0")
	echo "first line after $ms ms"
	# tail polls every second on FUSE; the command takes 3.6 s
	[ "$ms" -lt 2500 ]
	[ "$(kv "$M/stat" state)" = running ]
	cat "$M/exit" >/dev/null
	wait_for "grep -q line12 '$VP_DIR/tf'"
	kill "$tp"
	# nothing lost or doubled between polls
	[ "$(cat "$VP_DIR/tf")" = "$(seq 1 12 | sed 's/^/line/')" ]
	[ ! -s "$VP_DIR/tf.err" ]
}

@test "tail -F follows across commands: each command's output is a new file" {
	echo 'for i in $(seq 1 20); do echo old-line-$i; done' > "$M/cmd"
	cat "$M/exit" >/dev/null
	local ino0
	ino0=$(stat -c %i "$M/stdout")
	timeout 40 tail -F "$M/stdout" > "$VP_DIR/tF" 2> "$VP_DIR/tF.err" &
	local tp=$!
	wait_for "grep -q old-line-20 '$VP_DIR/tF'"
	# More than the old output, at once: a truncation could not be seen
	# within tail's 1 s poll; a new inode is.
	echo 'for i in $(seq 1 40); do echo new-line-$i; done' > "$M/cmd"
	cat "$M/exit" >/dev/null
	[ "$(stat -c %i "$M/stdout")" != "$ino0" ]
	wait_long "grep -q new-line-40 '$VP_DIR/tF'"
	echo 'echo again' > "$M/cmd"
	cat "$M/exit" >/dev/null
	wait_long "grep -q again '$VP_DIR/tF'"
	kill -0 "$tp" # still following
	kill "$tp"
	cat "$VP_DIR/tF.err"
	grep -q 'replaced' "$VP_DIR/tF.err"
	! grep -q 'seek\|truncated' "$VP_DIR/tF.err"
	# both outputs in order (the last 10 old lines, tail's default), nothing doubled
	[ "$(cat "$VP_DIR/tF")" = "$( (seq 11 20 | sed 's/^/old-line-/'; seq 1 40 | sed 's/^/new-line-/'; echo again))" ]
}

@test "an open stdout keeps reading its command's output after the next one starts" {
	echo 'printf "first output\n"' > "$M/cmd"
	cat "$M/exit" >/dev/null
	exec 8< "$M/stdout"
	local old_ino
	old_ino=$(stat -L -c %i /dev/fd/8)
	echo 'printf "second, and a longer output\n"' > "$M/cmd"
	cat "$M/exit" >/dev/null
	[ "$(cat "$M/stdout")" = "second, and a longer output" ]
	# the old file: same inode, its own size, its own text, then EOF
	[ "$(stat -L -c %i /dev/fd/8)" = "$old_ino" ]
	[ "$(stat -L -c %s /dev/fd/8)" = 13 ]
	[ "$(cat <&8)" = "first output" ]
	[ "$(stat -c %i "$M/stdout")" != "$old_ino" ]
	exec 8<&-
}

@test "a new command's stdout is a new inode; the old name is deleted for watchers" {
	echo 'echo some output' > "$M/cmd"
	cat "$M/exit" >/dev/null
	timeout 20 inotifywait "$M/stdout" > "$VP_DIR/ev" 2> "$VP_DIR/ev.err" &
	local w=$!
	wait_for "grep -q 'Watches established' '$VP_DIR/ev.err'"
	echo 'sleep 1' > "$M/cmd"
	local rc=0
	wait "$w" || rc=$?
	cat "$VP_DIR/ev" "$VP_DIR/ev.err"
	[ "$rc" -ne 124 ] # woken, not timed out
	grep -q 'DELETE_SELF\|IGNORED' "$VP_DIR/ev" "$VP_DIR/ev.err"
	[ "$(stat -c %s "$M/stdout")" = 0 ]
	cat "$M/exit" >/dev/null
}

@test "head -n1 prints the first line with nothing on stderr, also while running" {
	slow_lines 3
	cat "$M/exit" >/dev/null
	head -n1 "$M/stdout" > "$VP_DIR/h" 2> "$VP_DIR/h.err"
	[ "$(cat "$VP_DIR/h")" = line1 ]
	[ ! -s "$VP_DIR/h.err" ]
	run head -n 2 "$M/stdout"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'line1\nline2')" ]
	echo 'echo first; sleep 5; echo last' > "$M/cmd"
	local t0
	t0=$(date +%s%N)
	head -n1 "$M/stdout" > "$VP_DIR/h" 2> "$VP_DIR/h.err"
	[ "$(cat "$VP_DIR/h")" = first ]
	[ ! -s "$VP_DIR/h.err" ]
	[ "$(ms_since "$t0")" -lt 4000 ]
	echo kill > "$M/ctl"
	cat "$M/exit" >/dev/null
}

@test "grep -m1 returns at the first match, before the command ends" {
	slow_lines 15
	local t0
	t0=$(date +%s%N)
	run timeout 20 grep -m1 line2 "$M/stdout"
	[ "$status" -eq 0 ]
	[ "$output" = line2 ]
	[ "$(ms_since "$t0")" -lt 3500 ]
	cat "$M/exit" >/dev/null
	run grep -m1 -n line1 "$M/stdout"
	[ "$output" = 1:line1 ]
}

@test "python read(), seek and tell; dd skip=; tail -c" {
	echo 'printf "0123456789abcdef\\n"' > "$M/cmd"
	cat "$M/exit" >/dev/null
	run python3 -c 'import sys; print(open(sys.argv[1]).read(), end="")' "$M/stdout"
	[ "$status" -eq 0 ]
	[ "$output" = 0123456789abcdef ]
	run python3 -c '
import sys
f = open(sys.argv[1], "rb")
f.seek(10)
print(f.read(3).decode(), f.tell(), f.seek(0, 2))' "$M/stdout"
	[ "$output" = "abc 13 17" ]
	run dd if="$M/stdout" bs=1 skip=4 count=3 status=none
	[ "$status" -eq 0 ]
	[ "$output" = 456 ]
	[ "$(tail -c 4 "$M/stdout")" = def ]
}

@test "less +F follows a running command" {
	command -v less >/dev/null && command -v script >/dev/null || skip "no less or script"
	slow_lines 30
	TERM=dumb timeout 2 script -qc "less +F '$M/stdout'" /dev/null > "$VP_DIR/less" 2>&1 || true
	[ "$(kv "$M/stat" state)" = running ]
	grep -aq line3 "$VP_DIR/less"
	echo kill > "$M/ctl"
	cat "$M/exit" >/dev/null
}

@test "ls -l shows the real size of the status files" {
	echo 'echo hi' > "$M/cmd"
	cat "$M/exit" >/dev/null
	local f
	for f in "$MNT/config" "$M/stat" "$M/exit" "$M/cmd" "$M/ctl" "$M/log"; do
		echo "$f: $(stat -c %s "$f") vs $(wc -c < "$f")"
		[ "$(stat -c %s "$f")" = "$(wc -c < "$f")" ]
	done
	[ "$(stat -c %s "$MNT/config")" -gt 0 ]
	[ "$(stat -c %s "$M/stat")" -gt 0 ]
	[ "$(stat -c %s "$M/exit")" = 2 ]
	# stats moves with the pool: equal once nothing changes between the two
	wait_for '[ "$(stat -c %s "$MNT/stats")" = "$(wc -c < "$MNT/stats")" ]'
	[ "$(ls -l "$MNT" | awk '$NF == "stats" {print $5}')" -gt 0 ]
}

@test "a second echo > stdin gets EPIPE; exec 7> stdin keeps the pipe open" {
	echo 'cat' > "$M/cmd"
	echo a > "$M/stdin"
	run bash -c "echo b > '$M/stdin'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Broken pipe"* ]]
	[ "$(cat "$M/exit")" = 0 ]
	[ "$(cat "$M/stdout")" = a ]
	echo 'cat' > "$M/cmd"
	exec 7> "$M/stdin"
	echo one >&7
	echo two >&7
	exec 7>&-
	[ "$(cat "$M/exit")" = 0 ]
	[ "$(cat "$M/stdout")" = "$(printf 'one\ntwo')" ]
}

@test "rmdir of a busy machine ends a blocked cat stdout with EIO" {
	mkdir "$MNT/pool/cut"
	echo 'echo partial; sleep 60' > "$MNT/pool/cut/cmd"
	timeout 20 cat "$MNT/pool/cut/stdout" > "$VP_DIR/cut" 2> "$VP_DIR/cut.err" &
	local c=$!
	wait_for "grep -q partial '$VP_DIR/cut'"
	rmdir "$MNT/pool/cut"
	local rc=0
	wait "$c" || rc=$?
	[ "$rc" -eq 1 ]
	grep -q 'Input/output error' "$VP_DIR/cut.err"
	[ "$(cat "$VP_DIR/cut")" = partial ]
}
