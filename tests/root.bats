#!/usr/bin/env bats
# pool/NAME/root/ through the real daemon (docs/design.md §1 root/): the guest's own
# filesystem, read-write, checked both through the mount and from inside the
# guest with commands. tests/root_proxy.bats covers the proxy in depth on a
# harness; this suite checks it is wired into the daemon the same way.

bats_require_minimum_version 1.5.0

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

load helpers

setup_file() {
	vp_mount
	mkdir "$MNT/pool/rt"
	export M=$MNT/pool/rt R=$MNT/pool/rt/root
	export TMPD
	TMPD=$(mktemp -d /tmp/vp-root-bats.XXXXXX)
}

teardown_file() {
	[ -n "${TMPD:-}" ] && rm -rf "$TMPD"
	vp_unmount
}

# In the guest: run CMD in machine rt, wait for it, print its stdout.
guest() {
	vp_run rt "$1"
	cat "$M/stdout"
}

@test "root/ lists the guest's /" {
	[ -d "$R/tmp" ] && [ -d "$R/proc" ] && [ -d "$R/etc" ]
	diff <(guest 'ls -a /' | sort) <(ls -a "$R" | sort)
}

@test "100 MiB copied in and out through root/ is identical, also inside the guest" {
	head -c 100M /dev/urandom >"$TMPD/big"
	cp "$TMPD/big" "$R/tmp/big"
	cp "$R/tmp/big" "$TMPD/big.out"
	cmp "$TMPD/big" "$TMPD/big.out"
	[ "$(guest 'md5sum /tmp/big' | cut -d' ' -f1)" = "$(md5sum <"$TMPD/big" | cut -d' ' -f1)" ]
	rm "$R/tmp/big" "$TMPD/big" "$TMPD/big.out"
	[ -z "$(guest 'ls /tmp/big 2>/dev/null')" ]
}

@test "mkdir, rename, symlink, chmod, truncate and ls -l through root/ are what the guest sees" {
	mkdir -p "$R/tmp/w/sub"
	echo hello >"$R/tmp/w/a"
	mv "$R/tmp/w/a" "$R/tmp/w/b"
	echo old >"$R/tmp/w/c"
	mv -f "$R/tmp/w/b" "$R/tmp/w/c"
	mv "$R/tmp/w/sub" "$R/tmp/w/sub2"
	ln -s c "$R/tmp/w/link"
	chmod 640 "$R/tmp/w/c"
	head -c 5000 /dev/zero >"$R/tmp/w/t"
	truncate -s 123 "$R/tmp/w/t"
	truncate -s 70000 "$R/tmp/w/t"
	run -0 guest 'cd /tmp/w && ls -a | sort && cat c && readlink link && stat -c "%a %s" c t && test -d sub2 && echo dir-ok'
	[ "${lines[0]}" = . ] && [ "${lines[1]}" = .. ]
	[ "${lines[*]:2:4}" = "c link sub2 t" ]
	[ "${lines[6]}" = hello ]
	[ "${lines[7]}" = c ]
	[ "${lines[8]}" = "640 6" ]
	[ "${lines[9]}" = "644 70000" ]
	[ "${lines[10]}" = dir-ok ]
	# ls -l through root/ agrees with the guest's stat on each entry.
	run -0 ls -ln "$R/tmp/w"
	[[ "$output" == *"-rw-r-----"*" 6 "*" c"* ]]
	[[ "$output" == *"lrwxrwxrwx"*" link -> c"* ]]
	[[ "$output" == *"-rw-r--r--"*" 70000 "*" t"* ]]
	[ "$(readlink "$R/tmp/w/link")" = c ]
	[ "$(cat "$R/tmp/w/link")" = hello ]
	rm -r "$R/tmp/w"
	[ -z "$(guest 'ls -d /tmp/w 2>/dev/null')" ]
}

@test "a file a command creates appears in root/ right after the command ends" {
	[ ! -e "$R/tmp/f" ]
	echo 'echo x > /tmp/f' >"$M/cmd"
	cat "$M/exit" >/dev/null
	[ "$(cat "$R/tmp/f")" = x ]
	rm "$R/tmp/f"
}

@test "a command's changes and deletions show in root/ at once, within the cache timeout" {
	echo one >"$R/tmp/g"
	mkdir "$R/tmp/gd"
	echo inside >"$R/tmp/gd/h"
	# Cached now: attributes, entries and pages of g and gd/h.
	[ "$(cat "$R/tmp/g")" = one ] && [ "$(cat "$R/tmp/gd/h")" = inside ]
	vp_run rt 'echo "a much longer content" > /tmp/g; rm /tmp/gd/h'
	[ "$(cat "$R/tmp/g")" = "a much longer content" ]
	[ "$(stat -c %s "$R/tmp/g")" = 22 ]
	[ ! -e "$R/tmp/gd/h" ]
	# A shell whose cwd is in root/ keeps a working cwd across commands.
	cd "$R/tmp/gd"
	vp_run rt 'echo again > /tmp/gd/h'
	[ "$(/bin/pwd)" = "$R/tmp/gd" ]
	[ "$(cat h)" = again ]
	cd /
	rm -r "$R/tmp/g" "$R/tmp/gd"
}

@test "root/proc/cpuinfo (size 0) reads whole" {
	[ "$(stat -c %s "$R/proc/cpuinfo")" = 0 ]
	run -0 cat "$R/proc/cpuinfo"
	[ -n "$output" ]
	[ "$(grep -c '^processor' <<<"$output")" = "$(guest 'grep -c ^processor /proc/cpuinfo')" ]
	[ "$(cat "$R/proc/sys/kernel/hostname")" = "$(guest hostname)" ]
}

@test "errors through root/: ENOENT, ENOTEMPTY, EEXIST" {
	run ! cat "$R/tmp/no-such-file"
	[[ "$output" == *"No such file or directory"* ]]
	mkdir "$R/tmp/ne"
	: >"$R/tmp/ne/f"
	run ! rmdir "$R/tmp/ne"
	[[ "$output" == *"Directory not empty"* ]]
	run ! mkdir "$R/tmp/ne"
	[[ "$output" == *"File exists"* ]]
	rm -r "$R/tmp/ne"
}

@test "df and sync work on root/" {
	df "$R/tmp"
	dd if=/dev/zero of="$R/tmp/s" bs=1M count=4 conv=fsync status=none
	[ "$(guest 'stat -c %s /tmp/s')" = 4194304 ]
	rm "$R/tmp/s"
}

@test "what was written through root/ does not survive the machine's release" {
	mkdir "$MNT/pool/rel"
	echo secret >"$MNT/pool/rel/root/tmp/secret"
	[ "$(cat "$MNT/pool/rel/root/tmp/secret")" = secret ]
	rmdir "$MNT/pool/rel"
	[ ! -e "$MNT/pool/rel" ]
	mkdir "$MNT/pool/rel2"
	[ ! -e "$MNT/pool/rel2/root/tmp/secret" ]
	rmdir "$MNT/pool/rel2"
}

# Writes through root/ are answered before the guest has them (write-behind,
# fs/root_proxy.c): a full writable layer must still fail the writer.
@test "a full disk fails dd and cp through root/ (at a write or at close), not silently" {
	vp_mount2 "min=1,disk=8M"
	mkdir "$MNT2/pool/d"
	local r2=$MNT2/pool/d/root
	run dd if=/dev/zero of="$r2/fill" bs=1M count=32 status=none
	[ "$status" -ne 0 ]
	[[ $output == *"No space left on device"* ]]
	rm -f "$r2/fill"
	head -c 32M /dev/zero >"$TMPD/zeros"
	run cp "$TMPD/zeros" "$r2/fill"
	[ "$status" -ne 0 ]
	[[ $output == *"No space left on device"* ]]
	rm -f "$r2/fill" "$TMPD/zeros"
	# Room again: a file written and closed is whole for the next command.
	head -c 3M /dev/urandom >"$TMPD/r"
	cp "$TMPD/r" "$r2/ok"
	vp_run "$MNT2/pool/d" 'md5sum /ok'
	[ "$(cut -d' ' -f1 "$MNT2/pool/d/stdout")" = "$(md5sum <"$TMPD/r" | cut -d' ' -f1)" ]
	rm -f "$TMPD/r"
	rmdir "$MNT2/pool/d"
	vp_unmount2
	rm -rf "$D2"
}

@test "a file written and closed through root/ is whole for the next command at once" {
	for i in 1 2 3 4 5; do
		head -c $((2 * 1024 * 1024 + i * 4099)) /dev/urandom >"$TMPD/s"
		dd if="$TMPD/s" of="$R/tmp/c2o" bs=1M status=none
		[ "$(guest 'md5sum /tmp/c2o' | cut -d' ' -f1)" = "$(md5sum <"$TMPD/s" | cut -d' ' -f1)" ]
	done
	rm -f "$R/tmp/c2o" "$TMPD/s"
}
