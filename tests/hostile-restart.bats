#!/usr/bin/env bats
# Crash-only restart: a daemon killed with SIGKILL leaves a mount with no
# server; starting again on the same mountpoint detaches it, removes what
# the dead daemon left (cgroups, runtime directories, processes) and
# serves. Anything else mounted there is refused and left alone.

load helpers

# Starts a daemon on $R/mnt with extra -o options; RPID is its pid.
start_on() {
	"$VMPOOLFS" -f -o "min=1,image=$VMPOOL_IMAGE${2:+,$2}" "$R/mnt" > "$R/$1.log" 2>&1 &
	RPID=$!
}

serving() {
	mountpoint -q "$R/mnt" && [ -e "$R/mnt/config" ]
}

# What daemon pid $1 left on the host: cgroups, runtime dirs, scratch dirs.
leftovers() {
	find /sys/fs/cgroup -maxdepth 5 -type d -name "vmpoolfs.$1.*" 2>/dev/null
	ls -d "${TMPDIR:-/tmp}"/vmpool-*-"$1".* /run/vmpoolfs-ns."$1".* /tmp/vmpoolfs-ns."$1".* 2>/dev/null || true
}

setup() {
	R=$(mktemp -d /tmp/vpfs-restart.XXXXXX)
	mkdir "$R/mnt"
}

teardown() {
	local i
	for i in 1 2 3 4; do
		mountpoint -q "$R/mnt" || break
		for d in "$R"/mnt/pool/*/; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
		fusermount3 -u "$R/mnt" 2>/dev/null || umount -l "$R/mnt"
		sleep 0.2
	done
	[ -n "${RPID:-}" ] && wait "$RPID" 2>/dev/null || true
	rm -rf "$R"
}

@test "SIGKILL with machines held and commands running: a restart mounts, serves, and nothing of the old one is left" {
	start_on first
	local old=$RPID
	wait_for serving
	mkdir "$R/mnt/pool/a" "$R/mnt/pool/b"
	echo 'sleep 300' > "$R/mnt/pool/a/cmd"
	echo 'sleep 300 & sleep 300' > "$R/mnt/pool/b/cmd"
	local agents
	agents="$(kv "$R/mnt/pool/a/stat" host_pid) $(kv "$R/mnt/pool/b/stat" host_pid)"
	[ -n "$(leftovers "$old")" ]
	kill -9 "$old"
	wait "$old" || true
	run stat "$R/mnt"
	[[ $output == *"Transport endpoint is not connected"* ]]

	start_on second
	wait_for serving
	grep -q "detached the dead mount" "$R/second.log"
	mkdir "$R/mnt/pool/c"
	echo 'echo back' > "$R/mnt/pool/c/cmd"
	[ "$(timeout 20 cat "$R/mnt/pool/c/stdout")" = back ]
	# the old agents (and so their machines' processes) are gone
	local p
	for p in $agents; do
		wait_for "! kill -0 $p 2>/dev/null"
	done
	run leftovers "$old"
	[ -z "$output" ] || { echo "left: $output" >&2; false; }
	# and a clean stop of the new one leaves nothing either
	local new=$RPID
	rmdir "$R/mnt/pool/c"
	fusermount3 -u "$R/mnt"
	wait "$RPID"
	RPID=
	run leftovers "$new"
	[ -z "$output" ]
}

@test "a live vmpoolfs on the mountpoint is refused and keeps serving" {
	start_on first
	local first=$RPID
	wait_for serving
	run "$VMPOOLFS" -f -o "min=0,image=$VMPOOL_IMAGE" "$R/mnt"
	[ "$status" -eq 1 ]
	[[ $output == *"already mounted by a vmpoolfs that is running"* ]]
	kill -0 "$first"
	mkdir "$R/mnt/pool/x"
	echo 'echo still' > "$R/mnt/pool/x/cmd"
	[ "$(timeout 20 cat "$R/mnt/pool/x/stdout")" = still ]
}

@test "a mount that is not ours is refused and left mounted, live or dead" {
	mount -t tmpfs vpfs-test-tmpfs "$R/mnt"
	run "$VMPOOLFS" -f -o "min=0,image=$VMPOOL_IMAGE" "$R/mnt"
	[ "$status" -eq 1 ]
	[[ $output == *"is already a mount point (tmpfs"*"not a vmpoolfs"* ]]
	mountpoint -q "$R/mnt"
	umount "$R/mnt"

	# a dead FUSE mount of some other server (named otherwise)
	start_on other "fsname=otherfs,subtype=otherfs"
	wait_for serving
	grep -q " $R/mnt .* fuse.otherfs otherfs " /proc/self/mountinfo
	kill -9 "$RPID"
	wait "$RPID" || true
	RPID=
	run "$VMPOOLFS" -f -o "min=0,image=$VMPOOL_IMAGE" "$R/mnt"
	[ "$status" -eq 1 ]
	[[ $output == *"fuse.otherfs"*"its server is gone"* ]]
	grep -q " $R/mnt .* fuse.otherfs " /proc/self/mountinfo
}
