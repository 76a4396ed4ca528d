#!/usr/bin/env bats
# Small hostile cases: a bad ctl cwd, an idle guest killed from the host,
# env values with '=', the longest cmd, idle eviction with no load.

load helpers

setup_file() { vp_mount; }
teardown_file() { vp_unmount; }

@test "ctl cwd to a missing path or a file fails the write (ENOENT, ENOTDIR), logged; commands still run" {
	mkdir "$MNT/pool/cwd"
	local M=$MNT/pool/cwd
	run bash -c "echo 'cwd /nonexistent' > '$M/ctl'"
	[ "$status" -ne 0 ]
	[[ $output == *"No such file or directory"* ]]
	run bash -c "echo 'cwd /etc/passwd' > '$M/ctl'"
	[[ $output == *"Not a directory"* ]]
	grep -q "cwd: ctl: cwd /nonexistent: No such file or directory" "$VP_DIR/log"
	[ "$(kv "$M/ctl" cwd)" = / ]
	# symlinks and .. are followed as chdir would
	echo 'cwd /bin/../etc/' > "$M/ctl"
	vp_run cwd pwd
	[ "$(cat "$M/stdout")" = /etc ]
	[ "$(kv "$M/stat" state)" = exited ]
	rmdir "$M"
}

@test "an idle agent killed from the host shows state=error with the reason" {
	mkdir "$MNT/pool/idle"
	local M=$MNT/pool/idle
	vp_run idle true
	vp_kill_agent "$M"
	[ "$(kv "$M/stat" state)" = error ]
	kv "$M/stat" error | grep -q "killed by signal 9"
	grep -q "idle: guest is not alive" "$VP_DIR/log"
	run bash -c "echo true > '$M/cmd'"
	[ "$status" -ne 0 ]
	rmdir "$M"
}

@test "env K=V=W is accepted: the value is everything after the first '='" {
	mkdir "$MNT/pool/env"
	local M=$MNT/pool/env
	echo 'env OPTS=-Dx=y=z' > "$M/ctl"
	vp_run env 'printf %s "$OPTS"'
	[ "$(cat "$M/stdout")" = "-Dx=y=z" ]
	run bash -c "echo 'env =x' > '$M/ctl'"
	[ "$status" -ne 0 ]
	rmdir "$M"
}

@test "a cmd of the documented maximum (131071 bytes) runs; one byte more is E2BIG" {
	mkdir "$MNT/pool/big"
	local M=$MNT/pool/big
	{ printf 'exit 7'; head -c $((131071 - 6)) /dev/zero | tr '\0' ' '; } > "$VP_DIR/cmd"
	[ "$(stat -c %s "$VP_DIR/cmd")" = 131071 ]
	cp "$VP_DIR/cmd" "$M/cmd"
	[ "$(timeout 20 cat "$M/exit")" = 7 ]
	printf ' ' >> "$VP_DIR/cmd"
	run cp "$VP_DIR/cmd" "$M/cmd"
	[ "$status" -ne 0 ]
	[[ $output == *"Argument list too long"* ]]
	rmdir "$M"
}

@test "idle machines past idle= are evicted with no load, down to min" {
	vp_mount2 "min=1,idle=1"
	local i
	for i in 1 2 3 4 5; do mkdir "$MNT2/pool/m$i"; done
	for i in 1 2 3 4 5; do rmdir "$MNT2/pool/m$i"; done
	# nobody acquires from here on
	wait_for "[ \$(kv '$MNT2/stats' idle) = 1 ]"
	[ "$(kv "$MNT2/stats" evictions)" -ge 4 ]
	vp_unmount2
	rm -rf "$D2"
}
