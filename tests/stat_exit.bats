#!/usr/bin/env bats
# pool/NAME/stat and pool/NAME/exit (docs/design.md §1).

load helpers

setup_file() {
	vp_mount
	mkdir "$MNT/pool/s"
}
teardown_file() { vp_unmount; }

setup() { M=$MNT/pool/s; }

@test "before any command: state=idle and exit reads empty" {
	mkdir "$MNT/pool/fresh"
	[ "$(kv "$MNT/pool/fresh/stat" state)" = idle ]
	run timeout 5 cat "$MNT/pool/fresh/exit"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	rmdir "$MNT/pool/fresh"
}

@test "exit 3 gives 3" {
	vp_run_ends "$M" 'exit 3' 3 exited
	[ "$(kv "$M/stat" exit_code)" = 3 ]
}

@test "exit reads N and a newline" {
	echo 'true' > "$M/cmd"
	[ "$(cat "$M/exit" | od -An -c | tr -d ' ')" = '0\n' ]
	code=$(cat "$M/exit")
	[ "$code" = 0 ]
}

@test "kill -9 \$\$ gives 137 and state=signaled" {
	vp_run_ends "$M" 'kill -9 $$' 137 signaled
	[ "$(kv "$M/stat" signal)" = 9 ]
}

@test "a timeout gives 124 and state=timeout" {
	echo 'timeout 1' > "$M/ctl"
	local t0=$SECONDS
	vp_run_ends "$M" 'sleep 30' 124 timeout
	[ $((SECONDS - t0)) -lt 10 ]
	[ "$(kv "$M/stat" exit_code)" = 124 ]
	echo 'timeout 0' > "$M/ctl"
}

@test "the default timeout comes from -o timeout and shows in ctl" {
	grep -qx 'timeout=0' "$MNT/config"
	grep -qx 'timeout=0' "$M/ctl"
}

@test "stat while running: state, pid, started_ms, duration so far" {
	echo 'sleep 2' > "$M/cmd"
	[ "$(kv "$M/stat" state)" = running ]
	wait_for '[ -n "$(kv "$M/stat" pid)" ]'
	[ "$(kv "$M/stat" exit_code)" = "" ]
	local now started
	now=$(date +%s%3N)
	started=$(kv "$M/stat" started_ms)
	[ $((now - started)) -ge 0 ]
	[ $((now - started)) -lt 5000 ]
	cat "$M/exit" >/dev/null
	[ "$(kv "$M/stat" duration_ms)" -ge 1900 ]
}

@test "stat has every key, one per line" {
	echo 'printf abc; printf de >&2' > "$M/cmd"
	cat "$M/exit" >/dev/null
	for k in state exit_code signal pid started_ms duration_ms stdout_bytes stderr_bytes oom_kills cmd; do
		grep -q "^$k=" "$M/stat"
	done
	[ "$(kv "$M/stat" stdout_bytes)" = 3 ]
	[ "$(kv "$M/stat" stderr_bytes)" = 2 ]
	[ "$(kv "$M/stat" oom_kills)" = 0 ]
	! grep -q '^error=' "$M/stat"
}

@test "code=\$(cat exit) waits for the command" {
	echo 'sleep 1; exit 42' > "$M/cmd"
	code=$(cat "$M/exit")
	[ "$code" = 42 ]
}

@test "exit of a command that ended is read again and again" {
	echo 'exit 5' > "$M/cmd"
	[ "$(cat "$M/exit")" = 5 ]
	[ "$(cat "$M/exit")" = 5 ]
}

@test "stat and exit cannot be written by users" {
	run bash -c "echo state=x > '$M/stat'"
	[ "$status" -ne 0 ]
	run bash -c "echo 0 > '$M/exit'"
	[ "$status" -ne 0 ]
	grep -q '^state=' "$M/stat"
}
