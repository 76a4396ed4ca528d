#!/usr/bin/env bats
# max_machines: acquiring beyond the cap fails cleanly.

load helpers

setup_file() { vp_mount "max_machines=2"; }
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
