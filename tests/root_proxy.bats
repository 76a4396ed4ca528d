#!/usr/bin/env bats
# The root/ proxy (fs/root_proxy.c) on a real mount: tests/fs/rp_harness
# mounts one proxy over the host build of the agent rooted at a fresh
# directory, and every check compares what the mount shows with that
# backing directory. Needs root (FUSE mounts, a proc mount for the size-0
# file test) and the built harness: $RP_HARNESS, default
# $BUILD/tests/fs/rp_harness with BUILD defaulting to /work/main/build.

bats_require_minimum_version 1.5.0

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

# start_harness DIR MNT LOG [--no-readdirplus]: prints the harness pid; its
# exit status lands in LOG.rc.
start_harness() {
	local dir=$1 mnt=$2 log=$3 opt=${4:-}
	# fd 3 closed: bats waits for it, and the harness outlives the test.
	( "$RP_HARNESS" $opt "$dir" "$mnt" 2>"$log"; echo $? >"$log.rc" ) 3>&- >/dev/null &
	local pid=$!
	local i
	for i in $(seq 200); do
		if mountpoint -q "$mnt"; then
			echo "$pid"
			return 0
		fi
		[ -f "$log.rc" ] && break
		sleep 0.05
	done
	echo "rp_harness did not mount $mnt:" >&2
	cat "$log" >&2
	return 1
}

# harness_pid PID: the harness process under start_harness's PID (a
# subshell that waits for it to record its status).
harness_pid() {
	pgrep -P "$1" -x rp_harness
}

# stop_harness MNT LOG: unmounts and checks the harness exited cleanly
# (status 0, nothing from the sanitizers).
stop_harness() {
	local mnt=$1 log=$2 i
	mountpoint -q "$mnt" && fusermount3 -u "$mnt"
	for i in $(seq 200); do
		[ -f "$log.rc" ] && break
		sleep 0.05
	done
	if [ ! -f "$log.rc" ]; then
		echo "rp_harness did not exit after unmount" >&2
		return 1
	fi
	if [ "$(cat "$log.rc")" != 0 ] || grep -qE 'Sanitizer|runtime error' "$log"; then
		echo "rp_harness exited with $(cat "$log.rc"):" >&2
		cat "$log" >&2
		return 1
	fi
}

setup_file() {
	BUILD=${BUILD:-/work/main/build}
	export RP_HARNESS=${RP_HARNESS:-$BUILD/tests/fs/rp_harness}
	if [ ! -x "$RP_HARNESS" ]; then
		echo "rp_harness not found at $RP_HARNESS: build it (ninja -C \$BUILD tests/fs/rp_harness) or set RP_HARNESS" >&2
		return 1
	fi
	export BASE
	BASE=$(mktemp -d /tmp/rp-bats.XXXXXX)
	# DIR and MNT have different parents, so "MNT/.." and "DIR/.." differ.
	export DIR=$BASE/d/backing MNT=$BASE/m/mnt LOG=$BASE/harness.log
	mkdir -p "$DIR" "$MNT"
	echo "outside the root" >"$BASE/d/secret"
	export HPID
	HPID=$(start_harness "$DIR" "$MNT" "$LOG")
}

teardown_file() {
	[ -n "${BASE:-}" ] || return 0
	mountpoint -q "$DIR/proc" && umount -l "$DIR/proc"
	local ok=0
	stop_harness "$MNT" "$LOG" || ok=1
	rm -rf "$BASE"
	return $ok
}

# errno_of OP PATH [PATH2]: the errno name an os.* call fails with, or OK.
errno_of() {
	python3 - "$@" <<'EOF'
import errno, os, sys
op, args = sys.argv[1], sys.argv[2:]
try:
    if op == "open":
        os.close(os.open(args[0], os.O_RDONLY))
    elif op == "create":
        os.close(os.open(args[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    else:
        getattr(os, op)(*args)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}

@test "100 MiB file copied in and out through the mount is identical" {
	head -c 100M /dev/urandom >"$BASE/big"
	cp "$BASE/big" "$MNT/big"
	cmp "$BASE/big" "$DIR/big"
	cp "$MNT/big" "$BASE/big.out"
	cmp "$BASE/big" "$BASE/big.out"
	# A file put in the backing dir directly reads back whole through the mount.
	head -c 37M /dev/urandom >"$DIR/direct"
	cmp "$DIR/direct" "$MNT/direct"
	# 1 MiB requests both ways (the daemon's max_write/max_read), and
	# O_DIRECT, which the kernel handles and the agent never sees.
	dd if="$BASE/big" of="$MNT/big4" bs=4M status=none
	cmp "$BASE/big" "$DIR/big4"
	dd if="$MNT/big4" of="$BASE/big.out" bs=4M iflag=direct status=none
	cmp "$BASE/big" "$BASE/big.out"
	rm -f "$BASE/big" "$BASE/big.out" "$MNT/big" "$MNT/big4" "$MNT/direct"
	[ ! -e "$DIR/big" ]
}

@test "writes at offsets, appends and overwrites land in the backing file" {
	printf 'hello world\n' >"$MNT/w"
	printf 'HELLO' | dd of="$MNT/w" bs=1 seek=0 conv=notrunc status=none
	printf 'more\n' >>"$MNT/w"
	[ "$(cat "$DIR/w")" = "$(printf 'HELLO world\nmore')" ]
	dd if=/dev/zero of="$MNT/w" bs=1 count=1 seek=100000 conv=notrunc status=none
	[ "$(stat -c %s "$DIR/w")" = 100001 ]
	cmp "$DIR/w" "$MNT/w"
}

@test "mkdir and rmdir" {
	mkdir "$MNT/dir1"
	[ -d "$DIR/dir1" ]
	mkdir -p "$MNT/dir1/a/b/c"
	[ -d "$DIR/dir1/a/b/c" ]
	rmdir "$MNT/dir1/a/b/c" "$MNT/dir1/a/b" "$MNT/dir1/a" "$MNT/dir1"
	[ ! -e "$DIR/dir1" ]
	[ ! -e "$MNT/dir1" ]
}

@test "rename of files and directories, also over an existing file" {
	echo one >"$MNT/r1"
	mv "$MNT/r1" "$MNT/r2"
	[ ! -e "$DIR/r1" ] && [ "$(cat "$DIR/r2")" = one ]
	echo two >"$MNT/r3"
	mv -f "$MNT/r2" "$MNT/r3"
	[ "$(cat "$DIR/r3")" = one ] && [ ! -e "$DIR/r2" ]
	[ "$(cat "$MNT/r3")" = one ]
	mkdir -p "$MNT/rd1/sub"
	echo inner >"$MNT/rd1/sub/f"
	mkdir "$MNT/rd2"
	mv "$MNT/rd1" "$MNT/rd2/moved"
	[ "$(cat "$DIR/rd2/moved/sub/f")" = inner ]
	[ "$(cat "$MNT/rd2/moved/sub/f")" = inner ]
	[ ! -e "$MNT/rd1" ]
	# RENAME_NOREPLACE reaches the guest: mv -n keeps the target.
	echo keep >"$MNT/r4"
	echo other >"$MNT/r5"
	mv -n "$MNT/r5" "$MNT/r4" || true
	[ "$(cat "$DIR/r4")" = keep ]
	rm -rf "$MNT/r3" "$MNT/r4" "$MNT/r5" "$MNT/rd2"
	[ ! -e "$DIR/rd2" ]
}

@test "symlink and readlink" {
	echo target >"$MNT/st"
	ln -s st "$MNT/sl"
	[ "$(readlink "$DIR/sl")" = st ]
	[ "$(readlink "$MNT/sl")" = st ]
	[ "$(cat "$MNT/sl")" = target ]
	# An absolute target is shown relative to the proxy's root (the
	# backing dir); the guest keeps its text.
	ln -s /no/such/place "$DIR/dangling"
	[ "$(readlink "$MNT/dangling")" = no/such/place ]
	[ "$(readlink "$DIR/dangling")" = /no/such/place ]
	mkdir -p "$DIR/sd/in"
	ln -s /st "$DIR/sd/in/abs"
	ln -s ../../../../../st "$DIR/sd/in/up"
	[ "$(readlink "$MNT/sd/in/abs")" = ../../st ]
	[ "$(readlink "$MNT/sd/in/up")" = ../../st ]
	[ "$(cat "$MNT/sd/in/abs")" = target ] && [ "$(cat "$MNT/sd/in/up")" = target ]
	rm -r "$DIR/sd"
	[ -L "$MNT/dangling" ] && [ ! -e "$MNT/dangling" ]
	rm "$MNT/sl" "$MNT/st" "$MNT/dangling"
}

@test "hard link: same inode, link count 2" {
	echo linked >"$MNT/h1"
	ln "$MNT/h1" "$MNT/h2"
	[ "$(stat -c %h "$DIR/h1")" = 2 ]
	[ "$(stat -c %h "$MNT/h1")" = 2 ]
	[ "$(stat -c %i "$MNT/h1")" = "$(stat -c %i "$MNT/h2")" ]
	[ "$(stat -c %i "$DIR/h1")" = "$(stat -c %i "$DIR/h2")" ]
	echo changed >"$MNT/h2"
	[ "$(cat "$MNT/h1")" = changed ]
	rm "$MNT/h1"
	[ "$(stat -c %h "$MNT/h2")" = 1 ]
	rm "$MNT/h2"
}

@test "chmod and chown" {
	echo x >"$MNT/m"
	chmod 640 "$MNT/m"
	[ "$(stat -c %a "$DIR/m")" = 640 ]
	[ "$(stat -c %a "$MNT/m")" = 640 ]
	chmod u+x,g-r "$MNT/m"
	[ "$(stat -c %a "$DIR/m")" = 700 ]
	chown 1234:2345 "$MNT/m"
	[ "$(stat -c %u:%g "$DIR/m")" = 1234:2345 ]
	[ "$(stat -c %u:%g "$MNT/m")" = 1234:2345 ]
	rm "$MNT/m"
}

@test "truncate grows and shrinks; ftruncate through an open handle" {
	printf 'abcdef' >"$MNT/t"
	truncate -s 1M "$MNT/t"
	[ "$(stat -c %s "$DIR/t")" = 1048576 ]
	[ "$(stat -c %s "$MNT/t")" = 1048576 ]
	[ "$(head -c 6 "$MNT/t")" = abcdef ]
	[ "$(tail -c +7 "$MNT/t" | tr -d '\0' | wc -c)" = 0 ]
	truncate -s 3 "$MNT/t"
	[ "$(cat "$DIR/t")" = abc ]
	[ "$(cat "$MNT/t")" = abc ]
	# ftruncate on a file whose name is already gone works through its handle.
	python3 - "$MNT/t" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.unlink(sys.argv[1])
os.ftruncate(fd, 2)
assert os.fstat(fd).st_size == 2, os.fstat(fd).st_size
os.lseek(fd, 0, 0)
assert os.read(fd, 10) == b"ab"
os.close(fd)
EOF
	[ ! -e "$DIR/t" ]
}

@test "touch -d and touch set times (utimens, UTIME_NOW)" {
	echo x >"$MNT/u"
	touch -d '2001-02-03 04:05:06 UTC' "$MNT/u"
	want=$(date -d '2001-02-03 04:05:06 UTC' +%s)
	[ "$(stat -c %Y "$DIR/u")" = "$want" ]
	[ "$(stat -c %X "$DIR/u")" = "$want" ]
	[ "$(stat -c %Y "$MNT/u")" = "$want" ]
	touch -m -d '@1000000000.5' "$MNT/u"
	[ "$(stat -c %.1Y "$DIR/u")" = 1000000000.5 ]
	[ "$(stat -c %X "$DIR/u")" = "$want" ]
	before=$(date +%s)
	touch "$MNT/u"
	[ "$(stat -c %Y "$DIR/u")" -ge "$before" ]
	[ "$(stat -c %X "$DIR/u")" -ge "$before" ]
	rm "$MNT/u"
}

@test "ls -l of the mount equals the backing directory's" {
	mkdir -p "$MNT/ls/sub"
	echo a >"$MNT/ls/file"
	ln -s file "$MNT/ls/link"
	chmod 600 "$MNT/ls/file"
	: >"$MNT/ls/empty"
	diff <(ls -lnA --time-style=+%s.%N "$DIR/ls" | grep -v '^total') \
		<(ls -lnA --time-style=+%s.%N "$MNT/ls" | grep -v '^total')
	diff <(ls -A "$DIR") <(ls -A "$MNT")
	rm -rf "$MNT/ls"
}

@test "a large directory lists whole, with and without readdirplus" {
	mkdir "$DIR/many"
	(cd "$DIR/many" && seq -f 'file-with-a-longish-name-%05g' 3000 | xargs touch)
	diff <(ls -A "$DIR/many") <(ls -A "$MNT/many")
	[ "$(find "$MNT/many" -type f | wc -l)" = 3000 ]
	# Same listing through a second mount that uses plain READDIR.
	mkdir -p "$BASE/m2/mnt"
	pid=$(start_harness "$DIR" "$BASE/m2/mnt" "$BASE/h2.log" --no-readdirplus)
	run diff <(ls -lnA "$DIR/many") <(ls -lnA "$BASE/m2/mnt/many")
	stop_harness "$BASE/m2/mnt" "$BASE/h2.log"
	[ "$status" = 0 ]
	rm -rf "$MNT/many"
	[ ! -e "$DIR/many" ]
}

@test "inodes the kernel forgets (drop_caches) are looked up afresh, also under concurrent walks" {
	[ -w /proc/sys/vm/drop_caches ] || skip "cannot write /proc/sys/vm/drop_caches here"
	mkdir -p "$DIR/fg/a/b"
	(cd "$DIR/fg" && seq -f 'f%g' 1500 | xargs touch && cd a/b && seq -f 'g%g' 300 | xargs touch)
	[ "$(find "$MNT/fg" | wc -l)" = "$(find "$DIR/fg" | wc -l)" ]
	echo 2 >/proc/sys/vm/drop_caches
	pids=()
	for i in 1 2 3; do
		find "$MNT/fg" -exec stat -c %i {} + >/dev/null &
		pids+=($!)
	done
	echo 2 >/proc/sys/vm/drop_caches
	for p in "${pids[@]}"; do wait "$p"; done
	diff <(cd "$DIR/fg" && find . | sort) <(cd "$MNT/fg" && find . | sort)
	rm -r "$MNT/fg"
	[ ! -e "$DIR/fg" ]
}

@test "unlink" {
	echo bye >"$MNT/gone"
	rm "$MNT/gone"
	[ ! -e "$DIR/gone" ]
	[ ! -e "$MNT/gone" ]
	[ "$(errno_of open "$MNT/gone")" = ENOENT ]
}

@test "statfs: df works and matches the backing filesystem" {
	df "$MNT"
	[ "$(stat -f -c '%S %b' "$MNT")" = "$(stat -f -c '%S %b' "$DIR")" ]
	[ "$(stat -f -c %l "$MNT")" = 255 ]
}

@test "fsync: dd conv=fsync and sync of a directory" {
	dd if=/dev/urandom of="$MNT/fs" bs=64k count=16 conv=fsync status=none
	cmp "$DIR/fs" "$MNT/fs"
	dd if=/dev/zero of="$MNT/fs" bs=4k count=1 conv=fdatasync,notrunc status=none
	mkdir -p "$MNT/fsd"
	sync "$MNT/fsd"
	rm -rf "$MNT/fs" "$MNT/fsd"
}

@test "content that changes behind the proxy is read fresh" {
	echo one >"$DIR/c"
	[ "$(cat "$MNT/c")" = one ]
	echo 'two two two two' >"$DIR/c"
	sleep 1.2 # the attribute timeout (1 s)
	[ "$(cat "$MNT/c")" = 'two two two two' ]
	echo x >"$DIR/c"
	sleep 1.2
	[ "$(cat "$MNT/c")" = x ]
	# A file that appears in the backing dir is found at once (no
	# negative entry was cached by the failed lookup before).
	[ "$(errno_of open "$MNT/appears")" = ENOENT ]
	echo here >"$DIR/appears"
	[ "$(cat "$MNT/appears")" = here ]
	rm "$DIR/c" "$DIR/appears"
}

@test "rp_invalidate drops cached attributes and pages at once" {
	echo aaa >"$DIR/inv"
	[ "$(stat -c %s "$MNT/inv")" = 4 ]
	echo bbbbbbbbbbbb >"$DIR/inv"
	# (stat would still say 4 here until the 1 s attribute timeout.)
	n=$(grep -c 'invalidated' "$LOG" || true)
	hp=$(harness_pid "$HPID")
	kill -USR1 "$hp"
	for i in $(seq 100); do
		[ "$(grep -c 'invalidated' "$LOG" || true)" -gt "$n" ] && break
		sleep 0.05
	done
	[ "$(grep -c 'invalidated' "$LOG")" -gt "$n" ]
	[ "$(stat -c %s "$MNT/inv")" = 13 ]
	[ "$(cat "$MNT/inv")" = bbbbbbbbbbbb ]
	rm "$DIR/inv"
}

@test "rp_invalidate expires entries: removed and replaced names are seen at once, cwd survives" {
	mkdir -p "$DIR/isub"
	echo a >"$DIR/igone"
	echo b >"$DIR/isub/f"
	stat "$MNT/igone" "$MNT/isub/f" >/dev/null
	old_ino=$(stat -c %i "$MNT/isub/f")
	rm "$DIR/igone" "$DIR/isub/f"
	echo new >"$DIR/isub/f"
	n=$(grep -c 'invalidated' "$LOG" || true)
	cd "$MNT/isub"
	kill -USR1 "$(harness_pid "$HPID")"
	for i in $(seq 100); do
		[ "$(grep -c 'invalidated' "$LOG" || true)" -gt "$n" ] && break
		sleep 0.05
	done
	# Expired, not dropped: a process inside keeps a valid cwd.
	[ "$(/bin/pwd)" = "$MNT/isub" ]
	[ "$(cat f)" = new ]
	[ "$(stat -c %i f)" != "$old_ino" ]
	[ "$(errno_of open "$MNT/igone")" = ENOENT ]
	cd /
	rm -r "$DIR/isub"
}

@test "files of size 0 with content (procfs) read whole" {
	mkdir -p "$DIR/proc"
	mount -t proc proc "$DIR/proc"
	[ "$(stat -c %s "$MNT/proc/cpuinfo")" = 0 ]
	run -0 cat "$MNT/proc/cpuinfo"
	# The agent holds the inodes it was asked about until forgotten.
	umount -l "$DIR/proc"
	[ -n "$output" ]
	[ "$(grep -c '^processor' <<<"$output")" = "$(grep -c '^processor' /proc/cpuinfo)" ]
	rmdir "$DIR/proc"
}

@test "errors: ENOENT, ENOTEMPTY, EEXIST, ENAMETOOLONG, ENOTDIR, EISDIR" {
	[ "$(errno_of open "$MNT/missing")" = ENOENT ]
	run ! cat "$MNT/missing"
	[[ "$output" == *"No such file or directory"* ]]
	mkdir -p "$MNT/full"
	echo x >"$MNT/full/f"
	[ "$(errno_of rmdir "$MNT/full")" = ENOTEMPTY ]
	run ! rmdir "$MNT/full"
	[[ "$output" == *"Directory not empty"* ]]
	[ "$(errno_of mkdir "$MNT/full")" = EEXIST ]
	run ! mkdir "$MNT/full"
	[[ "$output" == *"File exists"* ]]
	[ "$(errno_of create "$MNT/full/f")" = EEXIST ]
	long=$(printf 'n%.0s' $(seq 300))
	[ "$(errno_of create "$MNT/$long")" = ENAMETOOLONG ]
	[ "$(errno_of open "$MNT/$long")" = ENAMETOOLONG ]
	[ "$(errno_of mkdir "$MNT/full/f/sub")" = ENOTDIR ]
	[ "$(errno_of rmdir "$MNT/full/f")" = ENOTDIR ]
	[ "$(errno_of unlink "$MNT/full")" = EISDIR ]
	rm -rf "$MNT/full"
}

@test "'..' at the mount root and symlinks pointing out do not escape to the backing dir's parent" {
	# DIR/../secret exists; MNT/.. is the mount's own parent, which has none.
	[ -f "$DIR/../secret" ]
	[ "$(errno_of open "$MNT/../secret")" = ENOENT ]
	[ "$(ls -A "$MNT/..")" = mnt ]
	[ "$(stat -c %i "$MNT/..")" = "$(stat -c %i "$BASE/m")" ]
	[ "$(errno_of open "$MNT/./../../d/backing/../secret")" = OK ] # plain host path, for contrast
	# A symlink in the guest pointing up is resolved by the host kernel
	# against the mount, never by the agent against the backing dir.
	ln -s ../secret "$DIR/up"
	ln -s ../../../../../../secret "$DIR/upup"
	[ "$(errno_of open "$MNT/up")" = ENOENT ]
	[ "$(errno_of open "$MNT/upup")" = ENOENT ]
	mkdir "$DIR/sub"
	[ "$(stat -c %i "$MNT/sub/..")" = "$(stat -c %i "$MNT")" ]
	rm "$DIR/up" "$DIR/upup"
	rmdir "$DIR/sub"
}

@test "mknod of a FIFO and of a regular file" {
	mkfifo "$MNT/fifo"
	[ -p "$DIR/fifo" ]
	[ -p "$MNT/fifo" ]
	python3 -c 'import os,stat,sys; os.mknod(sys.argv[1], 0o600 | stat.S_IFREG)' "$MNT/reg"
	[ -f "$DIR/reg" ] && [ "$(stat -c %a "$DIR/reg")" = 600 ]
	rm "$MNT/fifo" "$MNT/reg"
}

@test "many files written and read concurrently" {
	mkdir "$MNT/par"
	for i in $(seq 8); do
		head -c $((i * 3))M /dev/urandom >"$BASE/p$i"
	done
	# Explicit pids: a bare `wait` would also wait for bats' timeout timer.
	pids=()
	for i in $(seq 8); do
		cp "$BASE/p$i" "$MNT/par/p$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	for i in $(seq 8); do cmp "$BASE/p$i" "$DIR/par/p$i"; done
	pids=()
	for i in $(seq 8); do
		cmp "$BASE/p$i" "$MNT/par/p$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	rm -rf "$MNT/par" "$BASE"/p?
}

@test "nested: the proxy at ino_base 2^40 under a directory, as in the daemon" {
	mkdir -p "$BASE/n/mnt" "$DIR/nest"
	pid=$(start_harness "$DIR/nest" "$BASE/n/mnt" "$BASE/n.log" --nested)
	R=$BASE/n/mnt/root
	run -0 stat -c %i "$R"
	inode_root=$output
	head -c 10M /dev/urandom >"$BASE/n10"
	mkdir "$R/sub"
	cp "$BASE/n10" "$R/sub/f"
	mv "$R/sub/f" "$R/g"
	ln -s g "$R/l"
	run cmp "$BASE/n10" "$DIR/nest/g"
	st1=$status
	run cmp "$BASE/n10" "$R/l"
	st2=$status
	lsdiff=$(diff <(ls -lnA --time-style=+%s.%N "$DIR/nest") <(ls -lnA --time-style=+%s.%N "$R") || echo differ)
	ino_g=$(stat -c %i "$R/g")
	top=$(errno_of mkdir "$BASE/n/mnt/other")
	echo 1 >"$DIR/nest/s"
	stat "$R/s" >/dev/null
	echo 12345 >"$DIR/nest/s"
	kill -USR1 "$(harness_pid "$pid")"
	for i in $(seq 100); do grep -q invalidated "$BASE/n.log" && break; sleep 0.05; done
	size_s=$(stat -c %s "$R/s")
	stop_harness "$BASE/n/mnt" "$BASE/n.log"
	rm -rf "$DIR/nest" "$BASE/n10"
	[ "$inode_root" = $(((1 << 40) | 1)) ]
	[ "$st1" = 0 ] && [ "$st2" = 0 ]
	[ -z "$lsdiff" ]
	[ "$ino_g" -gt $((1 << 40)) ] && [ "$ino_g" -lt $((2 << 40)) ]
	[ "$top" = EPERM ]
	[ "$size_s" = 6 ]
}

@test "a dead agent gives EIO at once, never a hang" {
	mkdir -p "$BASE/x/mnt"
	echo data >"$DIR/dead"
	pid=$(start_harness "$DIR" "$BASE/x/mnt" "$BASE/x.log")
	X=$BASE/x/mnt
	[ "$(cat "$X/dead")" = data ]
	exec 5<"$X/dead"
	agent=$(pgrep -P "$(harness_pid "$pid")")
	[ -n "$agent" ]
	kill -KILL "$agent"
	sleep 0.2
	r1=$(timeout 10 python3 -c 'import os,sys
try: os.read(5, 10); print("OK")
except OSError as e: print(e.errno)' 5<&5 || echo TIMEOUT)
	r2=$(timeout 10 bash -c 'cat "$1/missing-name" 2>&1' _ "$X" || true)
	r3=$(timeout 10 bash -c 'mkdir "$1/d" 2>&1' _ "$X" || true)
	exec 5<&-
	fusermount3 -u "$X"
	for i in $(seq 200); do [ -f "$BASE/x.log.rc" ] && break; sleep 0.05; done
	[ -f "$BASE/x.log.rc" ]
	! grep -qE 'Sanitizer|runtime error' "$BASE/x.log"
	rm "$DIR/dead"
	[ "$r1" = 5 ] # EIO
	[[ "$r2" == *"Input/output error"* ]]
	[[ "$r3" == *"Input/output error"* ]]
}

# Writes are answered before the guest has them (write-behind, see
# fs/root_proxy.c): a full disk must still reach the writer, at a later
# write or at close, never be lost.
@test "a full disk under write-behind fails a write or the close, never silently" {
	mkdir -p "$DIR/small"
	mount -t tmpfs -o size=3m tmpfs "$DIR/small"
	# dd and cp exit non-zero and say why.
	run dd if=/dev/zero of="$MNT/small/f" bs=1M count=16 status=none
	[ "$status" -ne 0 ]
	[[ $output == *"No space left on device"* ]]
	rm -f "$MNT/small/f"
	head -c 16M /dev/zero >"$BASE/zeros"
	run cp "$BASE/zeros" "$MNT/small/f"
	[ "$status" -ne 0 ]
	[[ $output == *"No space left on device"* ]]
	rm -f "$MNT/small/f" "$BASE/zeros"
	# Where it surfaces, and that it stays: every write after it, close.
	run python3 - "$MNT/small/g" <<'PY'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk = b"x" * (1 << 20)
failed_at = None
for i in range(16):
    try:
        os.write(fd, chunk)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
        failed_at = i
        break
if failed_at is not None:
    try:
        os.write(fd, chunk)
        print("a write after the error succeeded")
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
try:
    os.close(fd)
    print("close ok after write error" if failed_at is not None else "no error at all")
except OSError as e:
    assert e.errno == errno.ENOSPC, e
    print("close", "ENOSPC")
PY
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "close ENOSPC" ]
	rm -f "$MNT/small/g"
	# Lazily: the agent still holds the directory (the kernel's lookup).
	umount -l "$DIR/small"
	rmdir "$DIR/small"
}

@test "a file written and closed is whole for the next command, through the mount and in the backing dir" {
	for i in $(seq 1 20); do
		head -c $((3 * 1024 * 1024 + i * 4099)) /dev/urandom >"$BASE/src"
		dd if="$BASE/src" of="$MNT/c2o" bs=1M status=none
		cmp "$BASE/src" "$DIR/c2o"
		cmp "$BASE/src" "$MNT/c2o"
		[ "$(stat -c %s "$MNT/c2o")" = "$(stat -c %s "$BASE/src")" ]
	done
	rm -f "$BASE/src" "$MNT/c2o"
}

@test "write-behind keeps order: rewrites of one range, truncate, fstat, a second handle" {
	run python3 - "$MNT/ord" "$DIR/ord" <<'PY'
import os, sys
mnt, back = sys.argv[1], sys.argv[2]
M = 1 << 20
fd = os.open(mnt, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
# The same MiB rewritten: the last write wins.
for i in range(12):
    os.pwrite(fd, bytes([65 + i]) * M, 0)
# Disjoint ranges out of order, then fstat and a truncate through the
# handle, all before close.
for k in (5, 3, 4, 1, 2):
    os.pwrite(fd, bytes([97 + k]) * M, k * M)
assert os.fstat(fd).st_size == 6 * M, os.fstat(fd).st_size
os.ftruncate(fd, 4 * M + 7)
assert os.stat(back).st_size == 4 * M + 7
# A second handle sees everything written through the first.
with open(mnt, "rb") as r:
    data = r.read()
os.pwrite(fd, b"Z" * 10, 0)
os.close(fd)
want = bytes([65 + 11]) * M + b"".join(bytes([97 + k]) * M for k in (1, 2, 3)) + bytes([97 + 4]) * 7
assert data == want, "second handle"
with open(back, "rb") as b:
    got = b.read()
assert got == b"Z" * 10 + want[10:], "backing file"
print("ok")
PY
	echo "$output"
	[ "$output" = ok ]
	rm -f "$MNT/ord"
}
