#!/usr/bin/env bats
# A command goes for its agent (issue 8): ptrace, signals, /proc/N/mem,
# pidfd_getfd, process_vm_writev. On the ns backend commands run in a pid
# and mount namespace of their own below the agent (docs/security.md, "The
# agent"): pid 1 there is the commands' init, which holds nothing, and the
# agent has no pid or /proc entry a command could name. What is checked:
# the agent is neither stopped nor traced (seen from the host), nothing a
# command reaches holds its channel, and the machine keeps answering.

load helpers

setup_file() {
	PROBE=${HOSTILE_PROBE:-$VP_BUILDDIR/tests/ns/hostile_probe}
	[ -x "$PROBE" ] || { echo "no probe at $PROBE: ninja -C build tests/ns/hostile_probe" >&2; return 1; }
	export PROBE
	vp_mount
}
teardown_file() { vp_unmount; }

# A machine NAME with the probe at /probe: new_machine NAME
new_machine() {
	mkdir "$MNT/pool/$1"
	cp "$PROBE" "$MNT/pool/$1/root/probe"
}

# The agent of machine directory DIR, seen from the host, is running (not
# stopped) and traced by nobody: agent_free DIR
agent_free() {
	local hp state tracer
	hp=$(kv "$1/stat" host_pid)
	state=$(awk '/^State:/ {print $2}' "/proc/$hp/status")
	tracer=$(awk '/^TracerPid:/ {print $2}' "/proc/$hp/status")
	[ "$state" != T ] && [ "$state" != t ] && [ "$tracer" = 0 ]
}

@test "the issue's attacks on pid 1 find the commands' init, not the agent" {
	new_machine a
	local m=$MNT/pool/a hp
	hp=$(kv "$m/stat" host_pid)
	# timeouts: an agent that was stopped would never answer
	echo '/probe attack 1' > "$m/cmd"
	[ "$(timeout 20 cat "$m/exit")" = 0 ]
	local out
	out=$(timeout 5 cat "$m/stdout")
	echo "$out"
	# pid 1 is the commands' init: it holds no fd at all, so no channel
	[[ "$out" == *"pidfd-getfd: 0 fds"* ]]
	# it ignores signals from its own namespace, as any init does
	[ "$(cat "$MNT/pool/a/root/proc/1/stat" | awk '{print $3}')" != Z ]
	# the agent itself: same process, running, untraced
	[ "$(kv "$m/stat" host_pid)" = "$hp" ]
	agent_free "$m"
	# and it still runs commands and answers
	echo true > "$m/cmd"
	[ "$(timeout 20 cat "$m/exit")" = 0 ]
	echo 'echo alive' > "$m/cmd"
	[ "$(timeout 20 cat "$m/stdout")" = alive ]
	agent_free "$m"
	rmdir "$m"
}

@test "no process a command can see holds a socket (the agent's channel)" {
	new_machine b
	local m=$MNT/pool/b
	vp_run b 'sleep 5 & /probe sockets'
	[ "$(cat "$m/stdout")" = "sockets: 0" ]
	# every pid a command sees: none is the agent, each attack finds nothing
	echo 'for p in $(ls /proc | grep "^[0-9]"); do [ $p = $$ ] || /probe attack $p; done' > "$m/cmd"
	[ "$(cat "$m/exit")" = 0 ]
	! grep -q "pidfd-getfd: [1-9]" "$m/stdout"
	agent_free "$m"
	vp_run b true
	[ "$(cat "$m/exit")" = 0 ]
	rmdir "$m"
}

@test "a command still traces, reads and kills its own child" {
	new_machine c
	local m=$MNT/pool/c
	vp_run c '/probe own'
	cat "$m/stdout"
	[ "$(cat "$m/exit")" = 0 ]
	[ "$(grep -c ': ok$' "$m/stdout")" = 7 ]
	rmdir "$m"
}

@test "killing the commands' init ends its commands; the next one runs" {
	new_machine d
	local m=$MNT/pool/d
	echo '/probe kill-init' > "$m/cmd"
	[ "$(timeout 20 cat "$m/exit")" = 137 ]
	agent_free "$m"
	echo 'echo $$' > "$m/cmd"
	[ "$(cat "$m/exit")" = 0 ]
	[ "$(cat "$m/stdout")" = "$(kv "$m/stat" pid)" ]
	grep -q "the commands' init ended" "$m/log"
	rmdir "$m"
}

@test "stat pid= is the shell's pid as commands see it" {
	mkdir "$MNT/pool/e"
	local m=$MNT/pool/e
	echo 'echo $$; cat /proc/self/stat | cut -d" " -f4' > "$m/cmd"
	[ "$(cat "$m/exit")" = 0 ]
	[ "$(head -n 1 "$m/stdout")" = "$(kv "$m/stat" pid)" ]
	rmdir "$m"
}

@test "root/ is the commands' view: their mounts and their /proc" {
	mkdir "$MNT/pool/f"
	local m=$MNT/pool/f
	vp_run f 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo hi > /mnt/t/f && echo $$ > /tmp/pid'
	[ "$(cat "$m/exit")" = 0 ]
	[ "$(cat "$m/root/mnt/t/f")" = hi ]
	# the next command sees the mount too
	echo 'cat /mnt/t/f' > "$m/cmd"
	[ "$(cat "$m/stdout")" = hi ]
	# root/proc is the commands' proc: its pid 1 is their init, with no fd
	[ -e "$m/root/proc/1/status" ]
	[ -z "$(ls "$m/root/proc/1/fd")" ]
	rmdir "$m"
}

@test "ctl kill and a timeout still reach the whole command tree" {
	mkdir "$MNT/pool/g"
	local m=$MNT/pool/g
	vp_ctl_kill "$m" 'sleep 100 & sleep 100; wait' '' 143
	echo 'timeout 1' > "$m/ctl"
	echo '(sleep 100 &) ; sleep 100' > "$m/cmd"
	[ "$(timeout 20 cat "$m/exit")" = 124 ]
	rmdir "$m"
}
