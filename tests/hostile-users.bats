#!/usr/bin/env bats
# Host users under -o allow_other: a machine belongs to the user who made
# it. A real second host user (made here, removed at the end) cannot
# enter, read, drive or remove root's machine, makes and uses its own;
# root reaches everything. Without allow_other that user reaches nothing.
# Needs root (useradd, the mount).

load helpers

U=vpfs-bats-u

setup_file() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	userdel -r "$U" >/dev/null 2>&1 || true
	useradd -m -s /bin/sh "$U"
	vp_mount "allow_other"
	chmod 755 "$VP_DIR" # mktemp's 0700 would stop the user before the mount
	mkdir "$MNT/pool/r"
	vp_run r 'echo secret; echo secret >&2; echo secret > /tmp/s'
}

teardown_file() {
	vp_unmount
	userdel -r "$U" >/dev/null 2>&1 || true
}

# Run a command as the second user: as_u CMD ARGS...
as_u() {
	setpriv --reuid="$U" --regid="$U" --init-groups -- "$@"
}

# As the second user, CMD must fail with MSG in its output: u_fails MSG CMD
u_fails() {
	local msg=$1
	shift
	run as_u "$@"
	[ "$status" -ne 0 ] || { echo "succeeded: $*: $output" >&2; return 1; }
	[[ $output == *"$msg"* ]] || { echo "not '$msg': $*: $output" >&2; return 1; }
}

@test "pool/ is like /tmp; a machine is 0700, owned with its files by its maker" {
	[ "$(stat -c %a "$MNT/pool")" = 1777 ]
	[ "$(stat -c '%a %u' "$MNT/pool/r")" = "700 0" ]
	[ "$(stat -c '%a %u' "$MNT/pool/r/cmd")" = "644 0" ]
	# stats and config stay readable by all
	as_u cat "$MNT/stats" >/dev/null
	as_u cat "$MNT/config" >/dev/null
	# the names are visible, as in /tmp; not even the attributes of another
	# user's machine are
	[ "$(as_u ls "$MNT/pool")" = r ]
	u_fails "Permission denied" stat "$MNT/pool/r"
}

@test "another user cannot enter, read, drive or remove root's machine" {
	local M=$MNT/pool/r
	u_fails "Permission denied" ls "$M"
	u_fails "Permission denied" bash -c "cd '$M'"
	u_fails "Permission denied" cat "$M/stdout"
	u_fails "Permission denied" cat "$M/stderr"
	u_fails "Permission denied" cat "$M/stat"
	u_fails "Permission denied" cat "$M/log"
	u_fails "Permission denied" sh -c "echo 'touch /tmp/pwned' > '$M/cmd'"
	u_fails "Permission denied" sh -c "echo 'kill' > '$M/ctl'"
	u_fails "Permission denied" sh -c "echo x > '$M/stdin'"
	u_fails "Permission denied" ls "$M/root/"
	u_fails "Permission denied" cat "$M/root/tmp/s"
	u_fails "Permission denied" sh -c "echo x > '$M/root/tmp/pwned'"
	u_fails "Permission denied" rmdir "$M"
	u_fails "Permission denied" mkdir "$M" # the name is taken, and not theirs to see
	[ -d "$M" ]
	vp_run r 'test -e /tmp/pwned && echo pwned; cat /tmp/s'
	[ "$(cat "$M/stdout")" = secret ]
}

@test "the kernel's cached dentries of root's walk do not let the user through" {
	local M=$MNT/pool/r
	# root looks everything up; the user follows within the entry timeout
	cat "$M/stdout" "$M/root/tmp/s" >/dev/null
	ls "$M/root/tmp" >/dev/null
	u_fails "Permission denied" cat "$M/stdout"
	u_fails "Permission denied" cat "$M/root/tmp/s"
	u_fails "Permission denied" stat "$M/root/tmp/s"
	u_fails "Permission denied" ls "$M/root/tmp"
	u_fails "Permission denied" rm -f "$M/root/tmp/s"
	u_fails "Permission denied" mv "$M/root/tmp/s" "$M/root/tmp/t"
	[ "$(cat "$M/root/tmp/s")" = secret ]
}

@test "the user makes and uses a machine of its own; root reaches it, removes it" {
	local M=$MNT/pool/u
	as_u mkdir "$M"
	[ "$(stat -c '%a %U' "$M")" = "700 $U" ]
	[ "$(stat -c '%U %G' "$M/stdout")" = "$U $(id -gn "$U")" ]
	as_u sh -c "echo 'echo hello; id -u' > '$M/cmd'"
	[ "$(as_u cat "$M/exit")" = 0 ]
	[ "$(as_u cat "$M/stdout")" = "hello
0" ] # guest root, as for anyone
	as_u sh -c "echo data > '$M/root/tmp/f'"
	[ "$(as_u cat "$M/root/tmp/f")" = data ]
	as_u sh -c "echo 'cwd /tmp' > '$M/ctl'"
	as_u ls "$M/root/etc" >/dev/null
	as_u sh -c "cd '$M/root/tmp' && ls f"
	# root reads it and may remove it
	[ "$(cat "$M/stdout")" = "hello
0" ]
	[ "$(cat "$M/root/tmp/f")" = data ]
	rmdir "$M"
	[ ! -e "$M" ]
	# and the user removes its own
	as_u mkdir "$M"
	as_u rmdir "$M"
	[ ! -e "$M" ]
}

@test "root's machine stays out of reach of a machine made by the user" {
	as_u mkdir "$MNT/pool/u2"
	# a rename or link across machines never works (EXDEV), and is refused first
	u_fails "" mv "$MNT/pool/r/root/tmp/s" "$MNT/pool/u2/root/tmp/s"
	[ "$(cat "$MNT/pool/r/root/tmp/s")" = secret ]
	as_u rmdir "$MNT/pool/u2"
}

@test "without allow_other the user cannot reach the mount at all" {
	vp_mount2 "min=0"
	chmod 755 "$D2"
	u_fails "Permission denied" ls "$MNT2"
	u_fails "Permission denied" cat "$MNT2/stats"
	u_fails "Permission denied" mkdir "$MNT2/pool/x"
	# and for the mounter nothing changed
	[ "$(stat -c %a "$MNT2/pool")" = 755 ]
	mkdir "$MNT2/pool/m"
	[ "$(stat -c '%a %u' "$MNT2/pool/m")" = "755 0" ]
	rmdir "$MNT2/pool/m"
	vp_unmount2
	rm -rf "$D2"
}
