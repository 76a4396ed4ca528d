#!/usr/bin/env bats
# The Debian package (issue 11): built from this tree with
# dpkg-buildpackage (no network: -Dimage=false), checked by lintian,
# installed into a throwaway bookworm root made by mmdebstrap, used there
# (a mount from the installed daemon, one command in a machine), then
# removed (state kept) and purged (nothing of it left).
# The base root (minbase + the package's dependencies) is cached in
# $VMPOOL_PKG_CACHE (default /var/cache/vmpoolfs): only the first run, or a
# change of dependencies, needs Debian's mirror.

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
VMPOOLFS=${VMPOOLFS:-$REPO/build/fs/vmpoolfs}
VMPOOL_IMAGE=${VMPOOL_IMAGE:-$(dirname "$(dirname "$VMPOOLFS")")/image}

setup_file() {
	[ "$(id -u)" = 0 ] || { echo "package.bats needs root" >&2; return 1; }
	PKG_WORK=$(mktemp -d /var/tmp/vpfs-pkg.XXXXXX)
	export PKG_WORK
	# VMPOOL_PKG_DEB: test that .deb instead of building one (debugging).
	if [ -n "${VMPOOL_PKG_DEB:-}" ]; then
		cp "$VMPOOL_PKG_DEB" "$PKG_WORK/"
		return 0
	fi
	mkdir "$PKG_WORK/src"
	# HEAD plus uncommitted changes: the files git tracks or would track.
	(cd "$REPO" && git ls-files -co --exclude-standard -z) |
		rsync -a --from0 --files-from=- "$REPO/" "$PKG_WORK/src/"
	(cd "$PKG_WORK/src" && dpkg-buildpackage -b -us -uc) >"$PKG_WORK/build.log" 2>&1 ||
		{ tail -n 40 "$PKG_WORK/build.log" >&2; return 1; }
}

teardown_file() {
	[ -n "${PKG_WORK:-}" ] && rm -rf --one-file-system "$PKG_WORK"
}

deb() { ls "$PKG_WORK"/vmpoolfs_*_amd64.deb; }

@test "dpkg-buildpackage makes the .deb; lintian reports no errors" {
	run deb
	[ "$status" = 0 ]
	dpkg-deb -f "$(deb)" Depends | grep -q fuse3
	dpkg-deb -f "$(deb)" Depends | grep -q mmdebstrap
	dpkg-deb -f "$(deb)" Depends | grep -q busybox-static
	dpkg-deb -c "$(deb)" | grep -q '/usr/bin/vmpoolfs$'
	run lintian --fail-on error "$(deb)"
	echo "$output"
	[ "$status" = 0 ]
	! grep -q '^E:' <<<"$output"
}

# Files of a root, less what package managers and logs change (and
# fusermount3's lock file: fuse3's, which stays installed).
tree_list() {
	(cd "$1" && find . -xdev \( -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/log \
		-o -path ./var/cache -o -path ./tmp -o -path ./proc -o -path ./sys -o -path ./dev \
		-o -path ./run -o -path ./srv/image -o -path ./mnt/vp -o -path ./out -o -path ./.oldroot -o -path ./etc/ld.so.cache -o -path ./etc/mtab.fuselock \) -prune -o -print | LC_ALL=C sort)
}

@test "installed in a throwaway root: mounts, runs a command, purges cleanly" {
	[ -d "$VMPOOL_IMAGE/rootfs" ]
	deps=$(dpkg-deb -f "$(deb)" Depends | sed 's/([^)]*)//g; s/|[^,]*//g; s/ //g')
	cache=${VMPOOL_PKG_CACHE:-/var/cache/vmpoolfs}
	base=$cache/pkgtest-bookworm-$(echo "$deps" | sha256sum | cut -c1-16).tar
	mkdir -p "$cache"
	if [ ! -f "$base" ]; then
		mmdebstrap --variant=minbase --include="$deps" bookworm "$base.tmp" >"$PKG_WORK/mmdebstrap.log" 2>&1 ||
			{ tail -n 20 "$PKG_WORK/mmdebstrap.log" >&2; false; }
		mv "$base.tmp" "$base"
	fi
	root=$PKG_WORK/root
	mkdir "$root"
	tar -C "$root" -xf "$base"
	tree_list "$root" >"$PKG_WORK/before"
	cp "$(deb)" "$root/tmp/vmpoolfs.deb"
	# dpkg, offline: the cached root holds every dependency already
	chroot "$root" dpkg -i /tmp/vmpoolfs.deb
	[ -d "$root/var/lib/vmpoolfs" ]
	chroot "$root" dpkg -L vmpoolfs >"$PKG_WORK/files"

	token=tok-$$-$RANDOM
	mkdir "$PKG_WORK/out"
	run unshare -m "$BATS_TEST_DIRNAME/pkgroot-inner.sh" "$root" "$VMPOOL_IMAGE" "$token" "$PKG_WORK/out"
	echo "$output"; cat "$PKG_WORK/out/daemon.log" || true
	[ "$status" = 0 ]
	[ "$(cat "$PKG_WORK/out/stdout")" = "$token
$(cat "$VMPOOL_IMAGE/rootfs/etc/hostname")" ]
	[ "$(cat "$PKG_WORK/out/exit")" = 0 ]
	[ "$(cat "$PKG_WORK/out/daemon.rc")" = 0 ]

	# remove keeps the state (images), purge deletes it
	mkdir -p "$root/var/lib/vmpoolfs/images/x"
	echo kept >"$root/var/lib/vmpoolfs/images/x/manifest"
	chroot "$root" dpkg --remove vmpoolfs
	[ ! -e "$root/usr/bin/vmpoolfs" ]
	[ -f "$root/var/lib/vmpoolfs/images/x/manifest" ]
	chroot "$root" dpkg --purge vmpoolfs
	[ ! -e "$root/var/lib/vmpoolfs" ]
	while read -r f; do
		[ -d "$root$f" ] || [ ! -e "$root$f" ] || { echo "left: $f" >&2; false; }
	done <"$PKG_WORK/files"
	tree_list "$root" >"$PKG_WORK/after"
	diff "$PKG_WORK/before" "$PKG_WORK/after"
}
