#!/usr/bin/env bats
# root/ honours the caller's credentials like a POSIX filesystem (as NFS
# does without squashing): under -o allow_other a host user who owns a
# machine uses its root/ as the same uid and groups in the guest, so the
# guest kernel checks permissions, owns new objects and applies sticky
# directories and the setgid rules; root keeps full access. The cases
# follow pjdfstest's families (open, create, mkdir, unlink, rmdir,
# rename, link, symlink, truncate, chmod, chown, utimensat). A real host
# user (made here, removed at the end). Needs root (useradd, the mount).

load helpers

U=vpfs-bats-cred

setup_file() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	userdel -r "$U" >/dev/null 2>&1 || true
	useradd -m -s /bin/sh "$U"
	vp_mount "allow_other"
	chmod 755 "$VP_DIR" # mktemp's 0700 would stop the user before the mount
	setpriv --reuid="$U" --regid="$U" --init-groups -- mkdir "$MNT/pool/u"
	# root's objects in the guest, made by a command (guest root)
	vp_run "$MNT/pool/u" 'echo r > /tmp/rootfile; chmod 644 /tmp/rootfile
		echo s > /tmp/secret; chmod 600 /tmp/secret
		echo w > /tmp/ww; chmod 666 /tmp/ww
		mkdir /tmp/rootdir /tmp/closed; chmod 700 /tmp/closed; echo c > /tmp/closed/f
		mkdir -m 1777 /tmp/sticky; mkdir -m 777 /tmp/open'
}

teardown_file() {
	vp_unmount
	userdel -r "$U" >/dev/null 2>&1 || true
}

R() { echo "$MNT/pool/u/root"; }

as_u() {
	setpriv --reuid="$U" --regid="$U" --init-groups -- "$@"
}

# As the user, CMD must fail with MSG in its output: u_fails MSG CMD
u_fails() {
	local msg=$1
	shift
	run as_u "$@"
	[ "$status" -ne 0 ] || { echo "succeeded: $*: $output" >&2; return 1; }
	[[ $output == *"$msg"* ]] || { echo "not '$msg': $*: $output" >&2; return 1; }
}

# What a guest command prints: g 'CMD'
g() {
	vp_run "$MNT/pool/u" "$1" && cat "$MNT/pool/u/stdout"
}

@test "what the owner creates in root/ is its own in the guest" {
	local r
	r=$(R)
	local ids
	ids="$(id -u "$U") $(id -g "$U")"
	as_u sh -c "echo x > '$r/tmp/mine'"
	as_u mkdir "$r/tmp/mydir"
	as_u ln -s mine "$r/tmp/mylink"
	as_u mkfifo "$r/tmp/myfifo"
	as_u ln "$r/tmp/mine" "$r/tmp/myhard"
	[ "$(g 'stat -c "%u %g" /tmp/mine /tmp/mydir /tmp/myfifo' | sort -u)" = "$ids" ]
	[ "$(g 'stat -c "%u %g" /tmp/mylink')" = "$ids" ]
	[ "$(stat -c '%u %g' "$r/tmp/mine")" = "$ids" ] # as the host sees it: the same ids
	# its own files it uses fully
	as_u sh -c "echo more >> '$r/tmp/mine'; truncate -s 2 '$r/tmp/mine'"
	as_u chmod 600 "$r/tmp/mine"
	as_u touch -d '2001-02-03 04:05:06' "$r/tmp/mine"
	as_u mv "$r/tmp/myhard" "$r/tmp/myhard2"
	as_u rm "$r/tmp/myhard2" "$r/tmp/mylink" "$r/tmp/myfifo"
	as_u rmdir "$r/tmp/mydir"
	[ "$(g 'stat -c "%a %s %Y" /tmp/mine')" = "600 2 $(date -d '2001-02-03 04:05:06' +%s)" ]
}

@test "open, create, mkdir, link, symlink, rename in root's places: EACCES" {
	local r
	r=$(R)
	u_fails "Permission denied" sh -c "echo x >> '$r/etc/passwd'"
	u_fails "Permission denied" cat "$r/tmp/secret"
	u_fails "Permission denied" sh -c "echo x > '$r/etc/vp-new'"
	u_fails "Permission denied" mkdir "$r/etc/vp-dir"
	u_fails "Permission denied" mkfifo "$r/etc/vp-fifo"
	u_fails "Permission denied" ln -s x "$r/etc/vp-link"
	as_u sh -c "echo x > '$r/tmp/tomove'"
	# /tmp is its own filesystem: link and rename into root's directory there
	u_fails "Permission denied" ln "$r/tmp/tomove" "$r/tmp/rootdir/hard"
	u_fails "Permission denied" mv "$r/tmp/tomove" "$r/tmp/rootdir/moved"
	u_fails "Permission denied" rm -f "$r/etc/passwd"
	u_fails "Permission denied" truncate -s 0 "$r/etc/passwd"
	u_fails "Permission denied" ls "$r/tmp/closed"
	u_fails "Permission denied" cat "$r/tmp/closed/f"
	# reading what all may read still works
	as_u cat "$r/etc/passwd" >/dev/null
	[ "$(as_u cat "$r/tmp/rootfile")" = r ]
	[ "$(as_u cat "$r/tmp/ww")" = w ]
	[ -z "$(g 'ls /etc/vp-new /etc/vp-dir /etc/vp-fifo /etc/vp-link /tmp/rootdir/hard /tmp/rootdir/moved 2>/dev/null')" ]
	[ "$(g 'head -c 4 /etc/passwd')" = "root" ]
}

@test "sticky /tmp: another user's file cannot be removed or renamed (EPERM)" {
	local r
	r=$(R)
	u_fails "Operation not permitted" rm -f "$r/tmp/rootfile"
	u_fails "Operation not permitted" mv "$r/tmp/rootfile" "$r/tmp/stolen"
	u_fails "Operation not permitted" rmdir "$r/tmp/rootdir"
	# a world-writable directory without the sticky bit lets it
	g 'echo z > /tmp/open/rf' >/dev/null
	as_u rm -f "$r/tmp/open/rf"
	# and in a sticky directory its own files are its to remove
	as_u sh -c "echo x > '$r/tmp/sticky/own'"
	as_u rm "$r/tmp/sticky/own"
	[ "$(g 'cat /tmp/rootfile; test -d /tmp/rootdir && echo dir')" = "r
dir" ]
}

@test "chmod, chown, utimensat of what it does not own: EPERM" {
	local r
	r=$(R)
	u_fails "Operation not permitted" chmod 666 "$r/tmp/rootfile"
	u_fails "Operation not permitted" chown "$U" "$r/tmp/rootfile"
	as_u sh -c "echo x > '$r/tmp/cho'"
	u_fails "Operation not permitted" chown 0 "$r/tmp/cho"
	u_fails "Operation not permitted" chgrp 0 "$r/tmp/cho"
	as_u chown "$U:$U" "$r/tmp/cho" # to itself: a no-op that is allowed
	# explicit times need ownership; "now" needs only write access
	u_fails "Operation not permitted" touch -d '2000-01-01' "$r/tmp/ww"
	as_u touch "$r/tmp/ww"
	u_fails "Permission denied" touch "$r/tmp/rootfile"
	[ "$(g 'stat -c "%a %u" /tmp/rootfile')" = "644 0" ]
}

@test "chmod g+s by a non-member of the file's group drops the bit" {
	local r
	r=$(R)
	as_u sh -c "echo x > '$r/tmp/sgid'"
	g 'chgrp 4242 /tmp/sgid' >/dev/null
	as_u chmod 2755 "$r/tmp/sgid"
	[ "$(g 'stat -c %a /tmp/sgid')" = 755 ]
	# in its own group the bit stays
	as_u chgrp "$U" "$r/tmp/sgid"
	as_u chmod 2755 "$r/tmp/sgid"
	[ "$(g 'stat -c %a /tmp/sgid')" = 2755 ]
	# a setgid directory gives its group to what the user makes in it
	g 'mkdir -m 2777 /tmp/sgdir; chgrp 4242 /tmp/sgdir' >/dev/null
	as_u mkdir "$r/tmp/sgdir/sub"
	[ "$(g 'stat -c "%g %a" /tmp/sgdir/sub')" = "4242 2755" ]
}

@test "root keeps full access to the user's machine" {
	local r
	r=$(R)
	echo x > "$r/etc/vp-root"
	[ "$(g 'stat -c "%u %g" /etc/vp-root')" = "0 0" ]
	cat "$r/tmp/secret" >/dev/null
	as_u sh -c "echo x > '$r/tmp/sticky/users'"
	rm "$r/tmp/sticky/users" # sticky does not stop root
	chmod 600 "$r/tmp/mine"
	chown 0:0 "$r/tmp/mine"
	touch -d '2000-01-01' "$r/tmp/mine"
	[ "$(g 'stat -c "%u %g %a" /tmp/mine')" = "0 0 600" ]
	rm "$r/etc/vp-root"
	ls "$r/tmp/closed" >/dev/null
}

@test "a user's access is its own even right after root's (no leaked ids)" {
	local r
	r=$(R)
	# root and the user alternate on the same FUSE workers
	for i in 1 2 3; do
		cat "$r/tmp/secret" >/dev/null
		u_fails "Permission denied" cat "$r/tmp/secret"
		as_u sh -c "echo $i > '$r/tmp/alt$i'"
		echo "$i" > "$r/tmp/ralt$i"
	done
	[ "$(g 'stat -c %u /tmp/alt1 /tmp/alt2 /tmp/alt3 | sort -u')" = "$(id -u "$U")" ]
	[ "$(g 'stat -c %u /tmp/ralt1 /tmp/ralt2 /tmp/ralt3 | sort -u')" = 0 ]
}
