#!/usr/bin/env bats
# Symlinks a hostile guest makes must never lead host tools working in
# MNT/pool/NAME/root/ to host files: absolute targets and ".." chains are
# presented inside the machine's root/ (docs/usage.md, docs/security.md).
# Canary files on the host (in /, in /tmp, next to the mount) hold HOST
# text; the same names in the guest hold GUEST text. Every read through a
# link must give the guest's, and no write may reach a host canary or make
# a host file.

bats_require_minimum_version 1.5.0

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

load helpers

C=vp-hostile-canary

setup_file() {
	vp_mount
	mkdir "$MNT/pool/hs"
	export M=$MNT/pool/hs R=$MNT/pool/hs/root
	export TMPD
	TMPD=$(mktemp -d /tmp/vp-hostile-bats.XXXXXX)
	# Host canaries: / and /tmp, the mount's parent ($VP_DIR), a directory.
	export HOSTC="/$C /tmp/$C $VP_DIR/$C /vp-hostile-dir/$C"
	mkdir -p /vp-hostile-dir
	local f
	for f in $HOSTC; do echo HOST >"$f"; done
	# The guest's side: the same names with GUEST text, and the links.
	# From /h (depth 1), 5 ".." reach the mount's parent, 6 /tmp, 40 "/"
	# when the host kernel resolves them against the mount.
	local up40
	up40=$(printf '../%.0s' $(seq 40))
	vp_run hs "
		echo GUEST > /$C; mkdir -p /vp-hostile-dir /h/real /h/deep/a/b/c /h3 /h4/a/b/c
		echo GUEST > /vp-hostile-dir/$C; echo inside > /h/real/file
		cd /h
		ln -s /$C x; ln -s ../../../../../../$C y; ln -s ../../../../../$C z
		ln -s ${up40}$C w; ln -s x l1; ln -s l1 l2; ln -s /$C bin
		ln -s /vp-hostile-dir d; ln -s real/file rel; ln -s ../h/real up; ln -s up/file upfile
		ln -s /$C deep/a/b/c/abs; ln -s ../../../../../$C deep/a/b/c/rel
		ln -s ../../../../../../../../$C deep/a/b/c/over
		ln -s /$C /h4/a/b/c/abs
		cd /h3
		ln -s ../../.. e; ln -s ../../../../../../.. f; ln -s /root dr; ln -s ../../../../../../tmp t
	"
}

teardown_file() {
	rm -rf "${TMPD:-/nonexistent}" /vp-hostile-dir "/$C" "/tmp/$C"
	# What a regression would have made on the host.
	rm -rf /vp-hostile-new /vp-hostile-new2 /vp-hostile-mk /root/vp-hostile-new3 /tmp/vp-hostile-new4
	vp_unmount
}

# In the guest: run CMD, print its stdout.
guest() {
	vp_run hs "$1"
	cat "$M/stdout"
}

# Every host canary still holds HOST, and none of the names a write through
# a link could have made on the host exists.
host_untouched() {
	local f
	for f in $HOSTC; do
		[ "$(cat "$f")" = HOST ] || { echo "host canary $f changed" >&2; return 1; }
	done
	for f in /vp-hostile-new /vp-hostile-new2 /vp-hostile-mk /root/vp-hostile-new3 \
		/vp-hostile-dir/t1 /vp-hostile-dir/m1 /tmp/vp-hostile-new4 "$VP_DIR/vp-hostile-new" \
		"$MNT/vp-hostile-new" "$MNT/pool/hs/vp-hostile-new"; do
		[ ! -e "$f" ] || { echo "host file $f was made" >&2; return 1; }
	done
}

@test "readlink shows targets inside root/; the guest keeps its own text" {
	[ "$(readlink "$R/h/x")" = "../$C" ]
	[ "$(readlink "$R/h/y")" = "../$C" ]
	[ "$(readlink "$R/h/z")" = "../$C" ]
	[ "$(readlink "$R/h/w")" = "../$C" ]
	[ "$(readlink "$R/h/deep/a/b/c/abs")" = "../../../../../$C" ]
	[ "$(readlink "$R/h/deep/a/b/c/over")" = "../../../../../$C" ]
	[ "$(readlink "$R/h3/e")" = .. ]
	[ "$(readlink "$R/h3/dr")" = ../root ]
	# Relative links that stay inside keep their text.
	[ "$(readlink "$R/h/l1")" = x ]
	[ "$(readlink "$R/h/up")" = ../h/real ]
	[ "$(readlink "$R/h/deep/a/b/c/rel")" = "../../../../../$C" ]
	[ "$(guest 'readlink /h/x; readlink /h/y; readlink /h3/e')" = "/$C
../../../../../../$C
../../.." ]
}

@test "cat and cp through absolute, '..'-chain and chained links read the guest's file" {
	local l
	for l in x y z w l1 l2 bin deep/a/b/c/abs deep/a/b/c/rel deep/a/b/c/over; do
		[ "$(cat "$R/h/$l")" = GUEST ] || { echo "$l: $(cat "$R/h/$l")" >&2; return 1; }
	done
	[ "$(cat "$R/h/d/$C")" = GUEST ]
	cp "$R/h/bin" "$TMPD/bin"
	[ "$(cat "$TMPD/bin")" = GUEST ]
	[ "$(cat "$R/h/rel")" = inside ] && [ "$(cat "$R/h/upfile")" = inside ]
	[ "$(cat "$R/h/up/file")" = inside ]
	[ -d "$R/h3/e/h" ] && [ -d "$R/h3/f/h3" ] && [ -d "$R/h3/t" ]
	host_untouched
}

@test "echo >, touch and mkdir -p through links create and change guest files only" {
	echo pwned >"$R/h/x"
	echo pwned >"$R/h/z"
	echo pwned >"$R/h/w"
	echo pwned >"$R/h/deep/a/b/c/over"
	touch "$R/h/d/t1"
	mkdir -p "$R/h/d/m1/m2"
	echo new >"$R/h3/e/vp-hostile-new"
	touch "$R/h3/f/vp-hostile-new2"
	touch "$R/h3/dr/vp-hostile-new3"
	mkdir -p "$R/h3/f/vp-hostile-mk/x"
	echo new >"$R/h3/t/vp-hostile-new4"
	host_untouched
	run -0 guest "cat /$C; ls /vp-hostile-dir; test -d /vp-hostile-dir/m1/m2 && cat /vp-hostile-new &&
		test -e /vp-hostile-new2 && test -e /root/vp-hostile-new3 && test -d /vp-hostile-mk/x &&
		test -e /tmp/vp-hostile-new4 && echo all-in-guest"
	[ "${lines[0]}" = pwned ]
	[[ "$output" == *t1* ]] && [[ "$output" == *m1* ]]
	[ "${lines[-1]}" = all-in-guest ]
	vp_run hs "echo GUEST > /$C"
}

@test "cp -r, cp -rL, tar ch and find -L stay inside the machine" {
	cp -r "$R/h" "$TMPD/hr"
	[ "$(readlink "$TMPD/hr/x")" = "../$C" ]
	cp -rL "$R/h" "$TMPD/hL"
	[ "$(cat "$TMPD/hL/x" "$TMPD/hL/w" "$TMPD/hL/d/$C" "$TMPD/hL/deep/a/b/c/over")" = "GUEST
GUEST
GUEST
GUEST" ]
	tar chf "$TMPD/h.tar" -C "$R" h
	mkdir "$TMPD/untar"
	tar xf "$TMPD/h.tar" -C "$TMPD/untar"
	[ "$(cat "$TMPD/untar/h/y")" = GUEST ]
	run -0 bash -c "find -L '$R/h' -type f -exec cat {} + | sort -u"
	[ "$output" = "GUEST
inside" ]
	if grep -rq HOST "$TMPD/hL" "$TMPD/untar"; then return 1; fi
	host_untouched
}

@test "after a guest or host rename, links below never reach the host" {
	vp_run hs "mv /h/deep/a/b /h/bb"
	# Through the old and the new path, at once and after the move window.
	local i
	for i in 1 2; do
		[ "$(cat "$R/h/bb/c/abs" 2>/dev/null || echo none)" != HOST ]
		[ "$(cat "$R/h/bb/c/over" 2>/dev/null || echo none)" != HOST ]
		sleep 2.5
	done
	[ "$(readlink "$R/h/bb/c/abs")" = "../../../$C" ]
	[ "$(cat "$R/h/bb/c/abs")" = GUEST ]
	# A host rename moves a deep directory up: its links must not keep
	# the old, larger depth.
	cat "$R/h4/a/b/c/abs" >/dev/null
	mv "$R/h4/a/b/c" "$R/h4c"
	[ "$(cat "$R/h4c/abs" 2>/dev/null || echo none)" != HOST ]
	sleep 2.5
	[ "$(readlink "$R/h4c/abs")" = "../$C" ]
	[ "$(cat "$R/h4c/abs")" = GUEST ]
	host_untouched
}
