#!/usr/bin/env bats
# max_machines: acquiring beyond the cap fails cleanly. mem: a command
# that outgrows the machine's memory is killed and stat says so.

load helpers

setup_file() { vp_mount "max_machines=2,mem=64M"; }
teardown_file() { vp_unmount; }

@test "mkdir beyond max_machines fails with EAGAIN and a message" {
	mkdir "$MNT/pool/a" "$MNT/pool/b"
	run mkdir "$MNT/pool/c"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Resource temporarily unavailable"* ]]
	[ ! -e "$MNT/pool/c" ]
	grep -q "max_machines=2" "$VP_DIR/log"
	# the others still work
	echo 'echo fine' > "$MNT/pool/a/cmd"
	[ "$(cat "$MNT/pool/a/stdout")" = fine ]
}

@test "after a release the name can be acquired" {
	rmdir "$MNT/pool/b"
	wait_for 'mkdir "$MNT/pool/c" 2>/dev/null'
	[ -d "$MNT/pool/c" ]
	rmdir "$MNT/pool/a" "$MNT/pool/c"
}

@test "a memory hog is killed by the mem limit: exit 137, stat oom_kills=1, the machine lives on" {
	mkdir "$MNT/pool/hog"
	local m=$MNT/pool/hog
	echo 'echo before; head -c 1073741824 /dev/zero | tail' > "$m/cmd"
	# tail is killed (SIGKILL), so the shell exits 137
	[ "$(cat "$m/exit")" = 137 ]
	[ "$(kv "$m/stat" oom_kills)" -ge 1 ]
	[ "$(cat "$m/stdout")" = before ]
	# the next command starts from 0 and runs
	echo 'echo after' > "$m/cmd"
	[ "$(cat "$m/stdout")" = after ]
	[ "$(kv "$m/stat" oom_kills)" = 0 ]
	rmdir "$m"
}
