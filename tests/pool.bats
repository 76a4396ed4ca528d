#!/usr/bin/env bats
# pool/: mkdir acquires, rmdir releases; MNT/stats and MNT/config.

load helpers

setup_file() { vp_mount; }
teardown_file() { vp_unmount; }

@test "config shows backend=ns and the options in effect" {
	[ "$(kv "$MNT/config" backend)" = ns ]
	[ -n "$(kv "$MNT/config" backend_reason)" ]
	for k in min max idle max_machines timeout mem disk image version; do
		grep -q "^$k=" "$MNT/config"
	done
	[ "$(kv "$MNT/config" min)" = 1 ]
	[ "$(kv "$MNT/config" image)" = "$VMPOOL_IMAGE" ]
}

@test "mkdir acquires a machine, rmdir releases it" {
	mkdir "$MNT/pool/m"
	[ -d "$MNT/pool/m" ]
	[ -f "$MNT/pool/m/cmd" ]
	[ "$(kv "$MNT/stats" in_use)" = 1 ]
	[ "$(kv "$MNT/stats" sessions)" = 1 ]
	rmdir "$MNT/pool/m"
	[ ! -e "$MNT/pool/m" ]
	[ "$(kv "$MNT/stats" sessions)" = 0 ]
}

@test "mkdir of an existing name fails with EEXIST" {
	mkdir "$MNT/pool/dup"
	run mkdir "$MNT/pool/dup"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File exists"* ]]
	rmdir "$MNT/pool/dup"
}

@test "rmdir of an unknown name fails with ENOENT" {
	run rmdir "$MNT/pool/nosuch"
	[ "$status" -ne 0 ]
}

@test "only directories can be made under pool/" {
	run touch "$MNT/pool/file"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run ln -s x "$MNT/pool/link"
	[ "$status" -ne 0 ]
	run mkdir "$MNT/elsewhere"
	[ "$status" -ne 0 ]
}

@test "names with spaces, unicode and 255 bytes work" {
	local long
	long=$(printf 'n%.0s' $(seq 1 255))
	for n in "with space" "ünïcødé ✓ 名前" "$long"; do
		mkdir "$MNT/pool/$n"
		echo 'echo ok' > "$MNT/pool/$n/cmd"
		[ "$(cat "$MNT/pool/$n/stdout")" = ok ]
	done
	run ls "$MNT/pool"
	[[ "$output" == *"with space"* ]]
	[[ "$output" == *"名前"* ]]
	for n in "with space" "ünïcødé ✓ 名前" "$long"; do
		rmdir "$MNT/pool/$n"
	done
}

@test "a 256-byte name fails with ENAMETOOLONG" {
	run mkdir "$MNT/pool/$(printf 'n%.0s' $(seq 1 256))"
	[ "$status" -ne 0 ]
	[[ "$output" == *"too long"* ]]
	[ -z "$(ls "$MNT/pool")" ]
}

@test "8 machines run commands at once" {
	for i in 1 2 3 4 5 6 7 8; do mkdir "$MNT/pool/p$i"; done
	local t0
	t0=$(date +%s%N)
	for i in 1 2 3 4 5 6 7 8; do echo "sleep 2; echo p$i" > "$MNT/pool/p$i/cmd"; done
	for i in 1 2 3 4 5 6 7 8; do
		[ "$(timeout 20 cat "$MNT/pool/p$i/stdout")" = "p$i" ]
	done
	local ms=$((($(date +%s%N) - t0) / 1000000))
	echo "8 x sleep 2 took ${ms} ms"
	[ "$ms" -lt 8000 ]
	# each is its own machine
	for i in 1 2 3 4 5 6 7 8; do echo "hostname; echo \$\$" > "$MNT/pool/p$i/cmd"; done
	[ "$(kv "$MNT/stats" in_use)" = 8 ]
	for i in 1 2 3 4 5 6 7 8; do rmdir "$MNT/pool/p$i"; done
}

@test "machines are isolated from each other" {
	mkdir "$MNT/pool/x" "$MNT/pool/y"
	vp_run x 'echo secret > /tmp/f'
	echo 'cat /tmp/f 2>/dev/null || echo none' > "$MNT/pool/y/cmd"
	[ "$(cat "$MNT/pool/y/stdout")" = none ]
	rmdir "$MNT/pool/x" "$MNT/pool/y"
}

@test "after rmdir, a reused machine keeps nothing of the previous user" {
	mkdir "$MNT/pool/u1"
	vp_run u1 'echo mine > /tmp/marker; echo mine > /root/marker; (sleep 300 &) ; export X=1'
	echo 'ls /tmp/marker' > "$MNT/pool/u1/cmd"
	[ "$(cat "$MNT/pool/u1/stdout")" = /tmp/marker ]
	local hits
	hits=$(kv "$MNT/stats" hits)
	rmdir "$MNT/pool/u1"
	# wait for the reset to finish so the next acquire is a warm hit
	wait_for '[ "$(kv "$MNT/stats" resetting)" = 0 ] && [ "$(kv "$MNT/stats" idle)" -ge 1 ]'
	mkdir "$MNT/pool/u2"
	[ "$(kv "$MNT/stats" hits)" -gt "$hits" ]
	echo 'ls /tmp/marker /root/marker 2>&1; ps -o comm 2>/dev/null | grep -c "^sleep"; true' > "$MNT/pool/u2/cmd"
	run cat "$MNT/pool/u2/stdout"
	[[ "$output" == *"No such file"* ]]
	[[ "$output" != *"/tmp/marker"$'\n'* ]]
	[ "${lines[-1]}" = 0 ]
	rmdir "$MNT/pool/u2"
}

@test "stats counters move: misses, hits, sessions, commands_run" {
	for k in hits misses evictions idle in_use creating resetting creates boot_us_avg reset_us_avg sessions commands_run; do
		grep -q "^$k=" "$MNT/stats"
	done
	local runs hits
	runs=$(kv "$MNT/stats" commands_run)
	hits=$(kv "$MNT/stats" hits)
	wait_for '[ "$(kv "$MNT/stats" idle)" -ge 1 ]'
	mkdir "$MNT/pool/st"
	vp_run st true
	[ "$(kv "$MNT/stats" commands_run)" = $((runs + 1)) ]
	[ "$(kv "$MNT/stats" hits)" -gt "$hits" ]
	rmdir "$MNT/pool/st"
}

@test "rmdir kills a running command and returns at once" {
	mkdir "$MNT/pool/r"
	echo 'sleep 300' > "$MNT/pool/r/cmd"
	local t0=$SECONDS
	rmdir "$MNT/pool/r"
	[ $((SECONDS - t0)) -lt 3 ]
	[ ! -e "$MNT/pool/r" ]
}

@test "a reader blocked on a machine being released ends" {
	mkdir "$MNT/pool/rb"
	echo 'sleep 300' > "$MNT/pool/rb/cmd"
	timeout 20 cat "$MNT/pool/rb/stdout" > /dev/null 2>&1 &
	local reader=$!
	sleep 0.5
	rmdir "$MNT/pool/rb"
	local rc=0
	wait $reader || rc=$?
	[ "$rc" -ne 124 ]
}

@test "an open handle on a released machine's file is stale, not a crash" {
	mkdir "$MNT/pool/h"
	vp_run h 'echo kept'
	exec 5< "$MNT/pool/h/stdout"
	rmdir "$MNT/pool/h"
	run cat <&5
	exec 5<&-
	[ "$output" = kept ]
	run cat "$MNT/pool/h/stat"
	[ "$status" -ne 0 ]
}
