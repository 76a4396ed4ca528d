#!/usr/bin/env bats
# vmpoolfs-image (issue 10): Debian builds (cached under
# /var/cache/vmpoolfs), --from-dir/--from-tar/--from-oci round trips, bad
# input, list/show/rm; images served by a real mount.
load ../helpers

setup_file() {
	IMG_TOOL=${IMG_TOOL:-$VP_BUILDDIR/image-tool/vmpoolfs-image}
	IMGS=$(mktemp -d /tmp/vpfs-images.XXXXXX)
	export IMG_TOOL IMGS
}
teardown_file() { rm -rf "$IMGS"; }

# Mount with IMAGE, run CMD in one machine, print its stdout.
run_in() { # run_in IMAGE CMD
	local keep=$VMPOOL_IMAGE
	VMPOOL_IMAGE=$1 vp_mount
	mkdir "$MNT/pool/j"
	echo "$2" > "$MNT/pool/j/cmd"
	cat "$MNT/pool/j/stdout"
	rmdir "$MNT/pool/j"
	vp_unmount
	VMPOOL_IMAGE=$keep
}

@test "a Debian image with one extra package runs its program" {
	"$IMG_TOOL" --images "$IMGS" build deb --packages hello
	grep -q '^package=hello ' "$IMGS/deb/manifest"
	grep -qx 'kind=debian' "$IMGS/deb/manifest"
	[ "$(stat -c %u "$IMGS/deb/rootfs")" = 1000000000 ]
	[ -s "$IMGS/deb/initramfs.cpio.gz" ]
	out=$(run_in "$IMGS/deb" 'hello; readlink -f /bin/sh')
	[ "$out" = "$(printf 'Hello, world!\n/usr/bin/dash')" ]
	run "$IMG_TOOL" --images "$IMGS" build deb --packages hello
	[ "$status" = 0 ]
	[[ $output == *"up to date"* ]]
}

@test "unknown package: clear error, nothing left" {
	run "$IMG_TOOL" --images "$IMGS" build nope --packages no-such-package-vmpool
	[ "$status" != 0 ]
	[[ $output == *"unknown package"*"no-such-package-vmpool"* ]]
	[ ! -e "$IMGS/nope" ]
	[ -z "$(ls -d "$IMGS"/.tmp-* 2>/dev/null)" ]
}

@test "--from-dir and --from-tar round trips" {
	"$IMG_TOOL" --images "$IMGS" build fromdir --from-dir "$VMPOOL_IMAGE/rootfs"
	[ "$(run_in "$IMGS/fromdir" 'echo dir-ok')" = dir-ok ]
	tar -C "$IMGS/fromdir/rootfs" --exclude=./dev/* -cf "$IMGS/../vpfs-rt.$$.tar" .
	"$IMG_TOOL" --images "$IMGS" build fromtar --from-tar "$IMGS/../vpfs-rt.$$.tar"
	rm -f "$IMGS/../vpfs-rt.$$.tar"
	[ "$(run_in "$IMGS/fromtar" 'echo tar-ok')" = tar-ok ]
	grep -qx 'kind=tar' "$IMGS/fromtar/manifest"
}

@test "--from-oci: an OCI layout made with umoci" {
	local oci=$IMGS/../vpfs-oci.$$
	umoci init --layout "$oci"
	umoci new --image "$oci:t"
	umoci unpack --image "$oci:t" "$oci.b"
	tar -C "$VMPOOL_IMAGE/rootfs" --exclude=./dev/* -cf - . | tar -C "$oci.b/rootfs" -x
	umoci repack --image "$oci:t" "$oci.b"
	"$IMG_TOOL" --images "$IMGS" build fromoci --from-oci "$oci:t"
	rm -rf "$oci" "$oci.b"
	[ "$(run_in "$IMGS/fromoci" 'echo oci-ok')" = oci-ok ]
}

@test "bad tars and names are refused, nothing half made" {
	local t=$IMGS/../vpfs-bad.$$
	mkdir -p "$t/d/dev"
	mknod "$t/d/dev/null" c 1 3
	tar -C "$t/d" -cf "$t/dev.tar" .
	run "$IMG_TOOL" --images "$IMGS" build bad --from-tar "$t/dev.tar"
	[ "$status" != 0 ]; [[ $output == *"device node"* ]]
	tar -cPf "$t/abs.tar" /etc/hostname
	run "$IMG_TOOL" --images "$IMGS" build bad --from-tar "$t/abs.tar"
	[ "$status" != 0 ]; [[ $output == *"absolute path"* ]]
	for n in a/b .. ../x; do
		run "$IMG_TOOL" --images "$IMGS" build "$n" --from-tar "$t/abs.tar"
		[ "$status" != 0 ]; [[ $output == *"bad image name"* ]]
	done
	rm -rf "$t"
	[ ! -e "$IMGS/bad" ]
	[ -z "$(ls -d "$IMGS"/.tmp-* 2>/dev/null)" ]
}

@test "list, show, rm" {
	"$IMG_TOOL" --images "$IMGS" build lsr --from-dir "$VMPOOL_IMAGE/rootfs"
	run "$IMG_TOOL" --images "$IMGS" list
	[[ $output == *lsr*dir* ]]
	run "$IMG_TOOL" --images "$IMGS" show lsr
	[[ $output == *"name=lsr"* ]]
	"$IMG_TOOL" --images "$IMGS" rm lsr
	[ ! -e "$IMGS/lsr" ]
	run "$IMG_TOOL" --images "$IMGS" show lsr
	[ "$status" != 0 ]
}
