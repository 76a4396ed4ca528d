#!/usr/bin/env bats
# Ordinary tools walking pool/NAME/root/ through the real daemon: find, du,
# ls -lR, tar, rsync and rm -rf over the guest's /proc, /sys and a tree of
# 100 000 files. Each walk made the agent keep one fd per inode the host
# kernel had looked up, until commands failed with EMFILE; now the agent
# holds at most AGENT_NODE_FDS (2048) node fds, and every test checks both
# that bound (sampled from /proc/HOST_PID/fd while the walk runs) and that
# the machine still runs commands afterwards.

bats_require_minimum_version 1.5.0

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-600}

load helpers

# AGENT_NODE_FDS, plus what the agent holds besides nodes (channel, pipes,
# a few open files of the walking tool, the splice pipe cache).
FD_BOUND=$((2048 + 256))

setup_file() {
	vp_mount
	mkdir "$MNT/pool/tl"
	export M=$MNT/pool/tl R=$MNT/pool/tl/root
	export TMPD
	TMPD=$(mktemp -d /tmp/vp-tools-bats.XXXXXX)
	# 100 directories of 1000 files, made in the guest.
	vp_run tl 'mkdir -p /tmp/tree && cd /tmp/tree && for d in $(seq 0 99); do mkdir $d && (cd $d && touch $(seq 0 999)) || exit 1; done; echo made'
	[ "$(cat "$M/stdout")" = made ]
}

teardown_file() {
	[ -n "${TMPD:-}" ] && rm -rf "$TMPD"
	vp_unmount
}

agent_fds() {
	ls "/proc/$(kv "$M/stat" host_pid)/fd" | wc -l
}

# Runs "$@" while sampling the agent's fd count; fails if the command
# fails or the count ever went over FD_BOUND. Prints the most seen.
walk() {
	local pid most=0 n
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		n=$(agent_fds)
		[ "$n" -gt "$most" ] && most=$n
		sleep 0.2
	done
	wait "$pid" || { echo "walk failed: $*" >&2; return 1; }
	n=$(agent_fds)
	[ "$n" -gt "$most" ] && most=$n
	echo "# agent fds: at most $most during: $*" >&3
	[ "$most" -le "$FD_BOUND" ] || { echo "agent held $most fds (bound $FD_BOUND)" >&2; return 1; }
}

# The machine still serves commands.
commands_work() {
	vp_run tl 'echo alive'
	[ "$(cat "$M/stdout")" = alive ] && [ "$(cat "$M/exit")" = 0 ]
	[ "$(kv "$M/stat" state)" != error ]
}

@test "find over the guest's /proc and /sys keeps the agent's fds bounded" {
	walk sh -c "find '$R/proc' >/dev/null 2>&1; true"
	commands_work
	walk sh -c "find '$R/sys' >/dev/null 2>&1; true"
	commands_work
}

@test "find over a 100 000-file tree sees every file, fds bounded" {
	walk sh -c "find '$R/tmp/tree' | wc -l >'$TMPD/count'"
	[ "$(cat "$TMPD/count")" -eq 100101 ]
	commands_work
}

@test "du -s, ls -lR and tar c of the tree" {
	walk sh -c "du -s '$R/tmp/tree' >'$TMPD/du'"
	[ -s "$TMPD/du" ]
	walk sh -c "ls -lR '$R/tmp/tree' | grep -c '^-' >'$TMPD/ls'"
	[ "$(cat "$TMPD/ls")" -eq 100000 ]
	walk sh -c "tar cf - -C '$R/tmp' tree | tar tf - | wc -l >'$TMPD/tar'"
	[ "$(cat "$TMPD/tar")" -ge 100000 ]
	commands_work
}

@test "ls -l of a 10 000-entry directory lists every entry with its attributes" {
	vp_run tl 'mkdir /tmp/wide && cd /tmp/wide && touch $(seq 0 9999) && echo made'
	[ "$(cat "$M/stdout")" = made ]
	run -0 ls -l "$R/tmp/wide"
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '^-rw')" -eq 10000 ]
	rm -rf "$R/tmp/wide"
	commands_work
}

# The round trips come from the fs_* counters of the machine's stat file.
# A fresh machine, so no dentry of the directory is cached yet. Names of at
# most 8 bytes take 160 bytes as FUSE direntplus entries, and the kernel's
# readdir buffer is at least a page: a round trip must bring every entry
# that fits in it, so 10 002 entries (with . and ..) need at most
# ceil(10002 / (PAGE / 160)) of them, plus the empty one that ends the
# listing and a few for the kernel re-reading at a boundary.
@test "ls -l of a 10 000-entry directory: READDIRPLUS batches, no lookup per entry" {
	mkdir "$MNT/pool/rdp"
	local m=$MNT/pool/rdp r=$MNT/pool/rdp/root
	vp_run rdp 'mkdir /tmp/d && cd /tmp/d && touch $(seq 10000) && echo made'
	[ "$(cat "$m/stdout")" = made ]
	local l0 p0 l1 p1 g0 g1
	l0=$(kv "$m/stat" fs_lookups)
	p0=$(kv "$m/stat" fs_readdirplus)
	g0=$(kv "$m/stat" fs_getattrs)
	[ -n "$l0" ] && [ -n "$p0" ] && [ -n "$g0" ]
	ls -l "$r/tmp/d" >"$TMPD/rdp"
	l1=$(kv "$m/stat" fs_lookups)
	p1=$(kv "$m/stat" fs_readdirplus)
	g1=$(kv "$m/stat" fs_getattrs)
	[ "$(grep -c '^-' "$TMPD/rdp")" -eq 10000 ]
	local per=$(($(getconf PAGESIZE) / 160))
	local bound=$(((10002 + per - 1) / per + 1 + 3))
	echo "# ls -l of 10 000: $((p1 - p0)) READDIRPLUS (bound $bound), $((l1 - l0)) LOOKUP, $((g1 - g0)) GETATTR" >&3
	[ "$((p1 - p0))" -ge 1 ]
	[ "$((p1 - p0))" -le "$bound" ]
	# root/tmp and root/tmp/d, again if their entries expired meanwhile.
	[ "$((l1 - l0))" -le 4 ]
	rmdir "$MNT/pool/rdp"
}

@test "rsync -a out of and into root/" {
	command -v rsync >/dev/null || skip "no rsync on the host"
	walk rsync -a "$R/tmp/tree/" "$TMPD/out/"
	[ "$(find "$TMPD/out" -type f | wc -l)" -eq 100000 ]
	# In: a tenth of it, to keep the guest's tmpfs and the run short.
	walk rsync -a "$TMPD/out/1"? "$R/tmp/in/"
	vp_run tl 'find /tmp/in -type f | wc -l'
	[ "$(cat "$M/stdout" | tr -d ' ')" -eq 10000 ]
	commands_work
}

@test "rm -rf of the tree through root/" {
	walk rm -rf "$R/tmp/tree" "$R/tmp/in"
	vp_run tl 'ls /tmp/tree 2>&1; test -e /tmp/tree; echo $?'
	[ "$(tail -n 1 "$M/stdout")" = 1 ]
	commands_work
}
