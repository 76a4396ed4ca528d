#!/usr/bin/env bats
# The daemon as a system service (issue 11): what `meson install` puts
# where, the man pages, the systemd unit, the fstab form through
# mount.fuse3, syslog without -f, sd_notify, --help, and scripts/run.sh.
# Runs once, on the plain build (VMPOOLFS, VMPOOL_IMAGE as for tests/*.bats;
# BUILD is the build directory).

setup_file() {
	load ../helpers
	export VMPOOLFS VMPOOL_IMAGE VP_REPO
	export BUILD=${BUILD:-$VP_BUILDDIR}
	export SV_DIR=$(mktemp -d /tmp/vpfs-service.XXXXXX)
	# One DESTDIR install for the tests that use the installed files.
	meson install -C "$BUILD" --no-rebuild --quiet --destdir "$SV_DIR/dest" >"$SV_DIR/install.log" 2>&1 ||
		{ cat "$SV_DIR/install.log" >&2; return 1; }
	export SV_PREFIX=$(meson introspect "$BUILD" --buildoptions |
		python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
	export SV_STATEDIR=$(meson introspect "$BUILD" --buildoptions |
		python3 -c 'import json,sys
o = {o["name"]: o["value"] for o in json.load(sys.stdin)}
p, l = o["prefix"], o["localstatedir"]
print(o["statedir"] or (l if l.startswith("/") else p + "/" + l) + "/lib/vmpoolfs")')
}

teardown_file() {
	[ -n "${SV_DIR:-}" ] && rm -rf "$SV_DIR"
}

# A datagram listener on unix socket $1 writing each datagram as a line to $2.
listen_dgram() {
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(65536).decode() + "\n"); f.flush()
' "$1" "$2" &
	LISTENER=$!
	local i
	for i in $(seq 50); do [ -S "$1" ] && return 0; sleep 0.1; done
	return 1
}

wait_for() { # wait_for SECONDS COMMAND...
	local n=$(($1 * 10)) i
	shift
	for i in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}

@test "meson install puts exactly the layout's files in a DESTDIR" {
	local p=${SV_PREFIX#/} s=${SV_STATEDIR#/} f
	{
		echo "$p/bin/vmpoolfs"
		echo "$p/bin/vmpoolfs-image"
		echo "$p/libexec/vmpoolfs/vmpool-agent"
		echo "$p/lib/systemd/system/vmpoolfs@.service"
		echo "$p/share/man/man1/vmpoolfs-image.1"
		echo "$p/share/man/man8/vmpoolfs.8"
		echo "$p/share/doc/vmpoolfs/README.md"
		for f in "$VP_REPO"/docs/*.md; do echo "$p/share/doc/vmpoolfs/$(basename "$f")"; done
		echo "$s/images/"
	} | sort >"$SV_DIR/want"
	(cd "$SV_DIR/dest" && { find . -type f -o -type l; find . -type d -empty -printf '%p/\n'; }) |
		sed 's|^\./||' | sort >"$SV_DIR/got"
	diff -u "$SV_DIR/want" "$SV_DIR/got"
	# The agent is a static executable, not a host command in bin/.
	[ -x "$SV_DIR/dest/$p/libexec/vmpoolfs/vmpool-agent" ]
	file "$SV_DIR/dest/$p/libexec/vmpoolfs/vmpool-agent" | grep -q 'statically linked'
	# The installed daemon's default image is under the state directory.
	env -u VMPOOL_IMAGE "$SV_DIR/dest/$p/bin/vmpoolfs" --help | grep -F -- "-o image=NAME|DIR      default image: a NAME in images=, or a directory ($SV_STATEDIR/images/default)"
}

@test "both man pages render without a warning" {
	local m
	for m in "$VP_REPO/man/vmpoolfs.8" "$VP_REPO/man/vmpoolfs-image.1"; do
		run bash -c "groff -ww -man -Tutf8 '$m' 2>&1 >/dev/null"
		[ "$status" = 0 ] && [ -z "$output" ] || { echo "$m: $output"; return 1; }
		run bash -c "MANWIDTH=80 man -l '$m' 2>&1 >/dev/null"
		[ "$status" = 0 ] && [ -z "$output" ] || { echo "$m: $output"; return 1; }
	done
	# vmpoolfs(8) has the usual sections and every -o option of --help.
	MANWIDTH=200 man -l "$VP_REPO/man/vmpoolfs.8" >"$SV_DIR/man8.txt"
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS "THE TREE" ERRORS "EXIT STATUS" SIGNALS ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
		grep -qx "$s" "$SV_DIR/man8.txt" || { echo "no section $s"; return 1; }
	done
	local opts
	opts=$("$VMPOOLFS" --help | sed -n '/^vmpoolfs options:/,/^$/p' | grep -o -- '-o [a-z_]*' | sort -u)
	[ -n "$opts" ]
	while read -r o; do
		grep -q -- "$o" "$SV_DIR/man8.txt" || { echo "vmpoolfs(8) lacks $o"; return 1; }
	done <<<"$opts"
}

@test "systemd-analyze verify passes on vmpoolfs@.service" {
	command -v systemd-analyze
	local unit=$SV_DIR/dest/${SV_PREFIX#/}/lib/systemd/system/vmpoolfs@.service
	grep -qx 'Type=notify' "$unit"
	grep -qx "ExecStart=$SV_PREFIX/bin/vmpoolfs -f \$VMPOOLFS_OPTIONS %f" "$unit"
	# verify checks that ExecStart's binary and the man page exist: show it
	# the installed ones, in a mount namespace of its own.
	run unshare -m --propagation private bash -c "mount --bind '$SV_DIR/dest$SV_PREFIX/bin' '$SV_PREFIX/bin' &&
		MANPATH='$SV_DIR/dest$SV_PREFIX/share/man' systemd-analyze verify '$unit' 2>&1"
	echo "$output"
	[ "$status" = 0 ]
	[ -z "$output" ]
}

# mount(8) runs helpers with PATH=/usr/local/sbin:/usr/local/bin:...:
# the installed vmpoolfs goes on /usr/local/sbin in a private mount
# namespace, where mount -t fuse.vmpoolfs finds mount.fuse3, which finds it.
@test "mount -t fuse.vmpoolfs and the vmpoolfs#SOURCE form, through mount.fuse3" {
	mkdir -p "$SV_DIR/helper" "$SV_DIR/m1" "$SV_DIR/m2"
	cp "$SV_DIR/dest$SV_PREFIX/bin/vmpoolfs" "$SV_DIR/helper/"
	run timeout 120 unshare -m --propagation private bash -ec "
		mount --bind '$SV_DIR/helper' /usr/local/sbin
		mount -t fuse.vmpoolfs vmpoolfs '$SV_DIR/m1' -o defaults,nofail,_netdev,min=0,image='$VMPOOL_IMAGE'
		grep ' $SV_DIR/m1 fuse.vmpoolfs ' /proc/self/mounts
		mkdir '$SV_DIR/m1/pool/j'
		echo 'echo hello from \$(uname -n)' > '$SV_DIR/m1/pool/j/cmd'
		cat '$SV_DIR/m1/pool/j/stdout' '$SV_DIR/m1/pool/j/exit'
		rmdir '$SV_DIR/m1/pool/j'
		umount '$SV_DIR/m1'
		mount -t fuse 'vmpoolfs#vmpool' '$SV_DIR/m2' -o min=0,image='$VMPOOL_IMAGE',nodev,nosuid
		mkdir '$SV_DIR/m2/pool/k'
		echo 'exit 7' > '$SV_DIR/m2/pool/k/cmd'
		cat '$SV_DIR/m2/pool/k/exit'
		rmdir '$SV_DIR/m2/pool/k'
		umount '$SV_DIR/m2'
		echo done"
	echo "$output"
	[ "$status" = 0 ]
	[[ $output == *"hello from vmpool"$'\n'"0"* ]]
	[[ $output == *$'\n'"7"$'\n'* ]]
	[[ $output == *done ]]
	! grep -q "$SV_DIR/m" /proc/mounts
}

@test "without -f the daemon's messages reach syslog, with priorities" {
	mkdir -p "$SV_DIR/sl"
	listen_dgram "$SV_DIR/sl/log.sock" "$SV_DIR/sl/syslog"
	local mnt=$SV_DIR/sl/mnt
	mkdir "$mnt"
	VMPOOL_SYSLOG_SOCKET=$SV_DIR/sl/log.sock "$VMPOOLFS" -o "min=0,image=$VMPOOL_IMAGE" "$mnt" \
		2>"$SV_DIR/sl/stderr"
	mountpoint -q "$mnt"
	mkdir "$mnt/pool/a"
	! echo bogus-word >"$mnt/pool/a/ctl"
	rmdir "$mnt/pool/a"
	fusermount3 -u "$mnt"
	wait_for 10 grep -q 'unmounted, all machines released' "$SV_DIR/sl/syslog" || true
	kill "$LISTENER"
	cat "$SV_DIR/sl/syslog"
	# LOG_DAEMON (24) + LOG_INFO (6) = 30, + LOG_WARNING (4) = 28.
	grep -E "^<30>[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} vmpoolfs\[[0-9]+\]: mounted on $mnt " "$SV_DIR/sl/syslog"
	grep -E "^<28>.* vmpoolfs\[[0-9]+\]: a: ctl: refused 'bogus-word': Invalid argument$" "$SV_DIR/sl/syslog"
	grep -E '^<30>.* vmpoolfs\[[0-9]+\]: unmounted, all machines released$' "$SV_DIR/sl/syslog"
	# The terminal saw the start, and nothing after the daemon detached.
	grep -q "^vmpoolfs: mounted on $mnt " "$SV_DIR/sl/stderr"
	! grep -q 'refused' "$SV_DIR/sl/stderr"
}

@test "under systemd's protocol: READY=1 once mounted, STOPPING=1 at the end, levels on the journal stream" {
	mkdir -p "$SV_DIR/sd"
	listen_dgram "$SV_DIR/sd/notify.sock" "$SV_DIR/sd/notify"
	local mnt=$SV_DIR/sd/mnt
	mkdir "$mnt"
	touch "$SV_DIR/sd/journal"
	# JOURNAL_STREAM names the daemon's stderr, as systemd sets it.
	NOTIFY_SOCKET=$SV_DIR/sd/notify.sock \
		JOURNAL_STREAM=$(stat -c '%d:%i' "$SV_DIR/sd/journal") \
		"$VMPOOLFS" -f -o "min=0,image=$VMPOOL_IMAGE" "$mnt" 2>>"$SV_DIR/sd/journal" &
	local pid=$!
	wait_for 30 grep -q 'READY=1' "$SV_DIR/sd/notify"
	mountpoint -q "$mnt"
	[ -e "$mnt/config" ]
	kill -TERM "$pid"
	wait "$pid"
	wait_for 5 grep -q 'STOPPING=1' "$SV_DIR/sd/notify"
	kill "$LISTENER"
	cat "$SV_DIR/sd/journal"
	grep -q "^<6>mounted on $mnt " "$SV_DIR/sd/journal"
	grep -q '^<6>unmounted, all machines released$' "$SV_DIR/sd/journal"
}

@test "--help: the project's options first, one thread option, max_threads mapped to it" {
	run "$VMPOOLFS" --help
	[ "$status" = 0 ]
	echo "$output"
	[[ ${lines[0]} == "usage: "*"vmpoolfs [options] [SOURCE] MOUNTPOINT" ]]
	local first_o
	first_o=$(grep -n -- "^ *-o " <<<"$output" | head -n1)
	[[ $first_o == *"-o min=N"* ]]
	grep -q -- '-o threads=N' <<<"$output"
	! grep -q 'max_threads (default' <<<"$output"
	! grep -q 'max_idle_threads\|clone_fd' <<<"$output"
	grep -q -- '-d, -o debug' <<<"$output"
	# max_threads= is threads=; both at once is refused (status 2).
	run "$VMPOOLFS" -o max_threads=8,threads=8,image=/nonexistent /tmp
	[ "$status" = 2 ]
	[[ $output == *"same option as threads="* ]]
	run "$VMPOOLFS" -o max_threads=1,image=/nonexistent /tmp
	[ "$status" = 2 ]
	[[ $output == *"invalid value for -o threads: '1'"* ]]
	# Options mount(8) adds do not break parsing: a bad mountpoint is the error.
	run "$VMPOOLFS" vmpoolfs /nonexistent/mnt -o rw,dev,suid,nodev,nosuid,exec,min=0
	[ "$status" = 2 ]
	[[ $output == *"bad mount point \`/nonexistent/mnt': No such file or directory"* ]]
	run "$VMPOOLFS" a b c
	[ "$status" = 2 ]
	[[ $output == *"too many arguments: 'c'"* ]]
}

@test "-d: in the foreground, libfuse's request trace on stderr as FUSE prints it" {
	local mnt=$SV_DIR/dbg
	mkdir -p "$mnt"
	"$VMPOOLFS" -d -o "min=0,image=$VMPOOL_IMAGE" "$mnt" >"$SV_DIR/dbg.log" 2>&1 &
	local pid=$!
	wait_for 30 test -e "$mnt/config"
	ls "$mnt" >/dev/null
	kill -0 "$pid" # -d implies -f: still our child
	fusermount3 -u "$mnt"
	wait "$pid"
	grep -qE '^unique: [0-9]+, opcode: INIT \(26\)' "$SV_DIR/dbg.log"
	grep -q '^vmpoolfs: mounted on' "$SV_DIR/dbg.log"
}

# scripts/run.sh in the background with SIGINT at its default (as from a
# terminal): the banner comes only once the tree is mounted, and Ctrl-C
# (SIGINT) unmounts and ends it with status 0.
run_sh() { # run_sh LOG ARGS...
	local log=$1
	shift
	python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$VP_REPO/scripts/run.sh" "$@" >"$log" 2>&1 &
	RUN_PID=$!
}

check_run_sh() { # check_run_sh MNT LOG
	local mnt=$1 log=$2 rc=0
	wait_for 300 grep -q 'Ctrl-C to unmount' "$log" || { cat "$log"; return 1; }
	# The banner follows the daemon's own "mounted on" line: it was ready.
	mountpoint -q "$mnt"
	grep -n 'mounted on' "$log" | head -n2 | tail -n1 | grep -q 'Ctrl-C to unmount'
	[ "$(grep -n "vmpoolfs: mounted on $mnt (image" "$log" | cut -d: -f1)" -lt \
		"$(grep -n 'Ctrl-C to unmount' "$log" | cut -d: -f1)" ]
	kill -INT "$RUN_PID"
	wait "$RUN_PID" || rc=$?
	cat "$log"
	[ "$rc" = 0 ]
	grep -q 'unmounted, all machines released' "$log"
	! mountpoint -q "$mnt"
}

@test "scripts/run.sh -o min=0 (default mountpoint from VMPOOL_MNT)" {
	local mnt=$SV_DIR/run1
	mkdir -p "$mnt"
	VMPOOL_MNT=$mnt run_sh "$SV_DIR/run1.log" -o min=0
	check_run_sh "$mnt" "$SV_DIR/run1.log"
	grep -q "min=0 max=16" "$SV_DIR/run1.log"
}

@test "scripts/run.sh MNT -o min=0,max=3 and scripts/run.sh MNT min=0 max=2" {
	local mnt=$SV_DIR/run2
	run_sh "$SV_DIR/run2.log" "$mnt" -o min=0,max=3
	check_run_sh "$mnt" "$SV_DIR/run2.log"
	grep -q "min=0 max=3" "$SV_DIR/run2.log"
	run_sh "$SV_DIR/run3.log" "$mnt" min=0 max=2
	check_run_sh "$mnt" "$SV_DIR/run3.log"
	grep -q "min=0 max=2" "$SV_DIR/run3.log"
}

@test "the docs and code refer to nothing outside the repository" {
	cd "$VP_REPO"
	! git grep -n -e '\.\./shared' -e 'DESIGN\.md' -e 'DESIGN §' -- . ':!tests/system/service.bats'
}
