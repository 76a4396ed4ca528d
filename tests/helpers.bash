# Shared by the bats suites of the tree: one vmpoolfs mount per suite file.
#   setup_file()    { vp_mount; }        # optional extra -o options: vp_mount "timeout=5"
#   teardown_file() { vp_unmount; }
# VMPOOLFS (the binary) and VMPOOL_IMAGE (the image dir) come from the
# environment (scripts/test.sh); point VMPOOLFS at an ASan build to run the
# same suites under the sanitizers.

VP_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMPOOLFS=${VMPOOLFS:-$VP_REPO/build/fs/vmpoolfs}
VMPOOL_IMAGE=${VMPOOL_IMAGE:-$(dirname "$(dirname "$VMPOOLFS")")/image}
[ -x "$VMPOOLFS" ] || { echo "no vmpoolfs at $VMPOOLFS: set VMPOOLFS" >&2; return 1; }
[ -d "$VMPOOL_IMAGE/rootfs" ] || { echo "no image at $VMPOOL_IMAGE: set VMPOOL_IMAGE" >&2; return 1; }
VP_BUILDDIR=$(cd "$(dirname "$VMPOOLFS")/.." && pwd)
POLLCHECK=${POLLCHECK:-$VP_BUILDDIR/tests/tree/pollcheck}

# Mount with -o min=1 (plus "$1"), wait until it serves, export MNT, VPID
# (the daemon), VP_DIR (its log and exit status).
vp_mount() {
	VP_DIR=$(mktemp -d /tmp/vpfs-bats.XXXXXX)
	MNT=$VP_DIR/mnt
	mkdir "$MNT"
	# The wrapper records the daemon's exit status for vp_unmount.
	bash -c '"$@"; echo $? > "'"$VP_DIR"'/rc"' vp \
		"$VMPOOLFS" -f -o "min=1,image=$VMPOOL_IMAGE${1:+,$1}" "$MNT" \
		>"$VP_DIR/log" 2>&1 &
	local wrapper=$! i
	VPID=
	for i in $(seq 1 200); do
		[ -n "$VPID" ] || VPID=$(pgrep -P "$wrapper" -x vmpoolfs || true)
		if mountpoint -q "$MNT" && [ -e "$MNT/config" ]; then
			break
		fi
		if [ -e "$VP_DIR/rc" ]; then
			echo "vmpoolfs exited early: $(cat "$VP_DIR/log")" >&2
			return 1
		fi
		sleep 0.05
	done
	mountpoint -q "$MNT" || { echo "not mounted: $(cat "$VP_DIR/log")" >&2; return 1; }
	[ -n "$VPID" ] || VPID=$(pgrep -P "$wrapper" -x vmpoolfs)
	export MNT VPID VP_DIR
}

# Every process below the daemon (the agents of its machines and their
# children), one pid a line.
vp_descendants() {
	local p=$1 c
	for c in $(pgrep -P "$p"); do
		echo "$c"
		vp_descendants "$c"
	done
}

# A daemon that was stopped exited cleanly: its status RC is 0, none of
# the processes KIDS (from vp_descendants) is left, and its LOG holds no
# sanitizer report; else the log goes to stderr: vp_exited_clean RC KIDS LOG
vp_exited_clean() {
	local rc=$1 kids=$2 log=$3 i alive=
	for i in $kids; do
		kill -0 "$i" 2>/dev/null && alive="$alive $i"
	done
	if [ "$rc" != 0 ] || [ -n "$alive" ]; then
		echo "vmpoolfs rc=$rc, processes left:${alive:- none}" >&2
		cat "$log" >&2
		return 1
	fi
	if grep -q "Sanitizer\|runtime error" "$log"; then
		cat "$log" >&2
		return 1
	fi
}

# Release what is still acquired, unmount, and check that the daemon exited
# 0 and left no process behind.
vp_unmount() {
	[ -n "${MNT:-}" ] || return 0
	local kids d i
	kids=$(vp_descendants "$VPID")
	for d in "$MNT"/pool/*/; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	fusermount3 -u "$MNT" || umount -l "$MNT"
	for i in $(seq 1 200); do
		[ -e "$VP_DIR/rc" ] && break
		sleep 0.05
	done
	vp_exited_clean "$(cat "$VP_DIR/rc" 2>/dev/null || echo none)" "$kids" "$VP_DIR/log" || return 1
	rm -rf "$VP_DIR"
}

# A second daemon beside the suite's mount, for a test that stops it itself:
# vp_mount2 OPTIONS (-o, image= is added). Sets D2 (its directory, with
# its log), MNT2 and PID2. VP_MOUNT2_PREFIX, when set, is a command the
# daemon runs under (it must exec it, so PID2 stays the daemon's pid).
vp_mount2() {
	D2=$(mktemp -d /tmp/vpfs-bats-2.XXXXXX)
	MNT2=$D2/mnt
	mkdir "$MNT2"
	$VP_MOUNT2_PREFIX "$VMPOOLFS" -f -o "$1,image=$VMPOOL_IMAGE" "$MNT2" > "$D2/log" 2>&1 &
	PID2=$!
	wait_for "mountpoint -q '$MNT2' && [ -e '$MNT2/config' ]"
}

# Unmounts the second daemon, waits for it and checks it exited cleanly
# (status 0, none of KIDS left, no sanitizer report): vp_unmount2 [KIDS].
# Leaves D2 for the caller to remove.
vp_unmount2() {
	local rc=0
	fusermount3 -u "$MNT2"
	wait "$PID2" || rc=$?
	vp_exited_clean "$rc" "${1:-}" "$D2/log"
}

# value of key in a key=value file: kv FILE KEY
kv() {
	sed -n "s/^$2=//p" "$1" | head -n 1
}

# Run a command in machine $1 (a name in $MNT/pool, or a machine's
# directory) and wait for it: vp_run NAME 'CMD'
vp_run() {
	local m=$1
	[[ $m == */* ]] || m=$MNT/pool/$m
	echo "$2" > "$m/cmd" && cat "$m/exit" >/dev/null
}

# Run CMD in machine directory DIR; it must end with exit code CODE and
# stat state STATE: vp_run_ends DIR 'CMD' CODE STATE
vp_run_ends() {
	echo "$2" > "$1/cmd" &&
		[ "$(timeout 20 cat "$1/exit")" = "$3" ] &&
		[ "$(kv "$1/stat" state)" = "$4" ]
}

# Start CMD in machine directory DIR, send it `kill [SIG]` through ctl; it
# must exit with CODE: vp_ctl_kill DIR 'CMD' SIG CODE (SIG '' for the default)
vp_ctl_kill() {
	echo "$2" > "$1/cmd" &&
		echo "kill${3:+ $3}" > "$1/ctl" &&
		[ "$(timeout 10 cat "$1/exit")" = "$4" ]
}

# SIGKILL the agent of machine directory DIR and give the daemon time to
# notice: vp_kill_agent DIR
vp_kill_agent() {
	kill -9 "$(kv "$1/stat" host_pid)" && sleep 0.3
}

# Wait until a condition holds (up to ~10 s): wait_for 'test -s file'
wait_for() {
	local i
	for i in $(seq 1 200); do
		eval "$1" && return 0
		sleep 0.05
	done
	return 1
}
