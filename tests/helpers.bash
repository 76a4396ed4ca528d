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

# Release what is still acquired, unmount, and check that the daemon exited
# 0 and left no process behind.
vp_unmount() {
	[ -n "${MNT:-}" ] || return 0
	local kids d i alive=
	kids=$(vp_descendants "$VPID")
	for d in "$MNT"/pool/*/; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	fusermount3 -u "$MNT" || umount -l "$MNT"
	for i in $(seq 1 200); do
		[ -e "$VP_DIR/rc" ] && break
		sleep 0.05
	done
	local rc
	rc=$(cat "$VP_DIR/rc" 2>/dev/null || echo none)
	for i in $kids; do
		kill -0 "$i" 2>/dev/null && alive="$alive $i"
	done
	if [ "$rc" != 0 ] || [ -n "$alive" ]; then
		echo "vmpoolfs rc=$rc, processes left:${alive:- none}" >&2
		cat "$VP_DIR/log" >&2
		return 1
	fi
	if grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$VP_DIR/log"; then
		cat "$VP_DIR/log" >&2
		return 1
	fi
	rm -rf "$VP_DIR"
}

# value of key in a key=value file: kv FILE KEY
kv() {
	sed -n "s/^$2=//p" "$1" | head -n 1
}

# Run a command in machine $1 and wait for it: vp_run NAME 'CMD'
vp_run() {
	echo "$2" > "$MNT/pool/$1/cmd" && cat "$MNT/pool/$1/exit" >/dev/null
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
