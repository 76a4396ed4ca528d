#!/usr/bin/env bats
# images/: several images in one mount, ctl snapshot, rmdir of an image,
# restart survival (docs/usage.md, the images directory). The images are
# copies of the test image (cp -a keeps the ns owners).

load helpers

setup_file() {
	IMGS=$(mktemp -d /tmp/vpfs-images.XXXXXX)
	cp -a "$VMPOOL_IMAGE" "$IMGS/one"
	cp -a "$VMPOOL_IMAGE" "$IMGS/two"
	printf 'min=0\nmax=2\n' > "$IMGS/two/pool.conf"
	export IMGS
	vp_mount "images=$IMGS"
}

teardown_file() {
	for d in "$MNT"/images/*/pool/*/; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	vp_unmount
	rm -rf "$IMGS"
}

# Release every machine of image $1.
release_all() {
	local d
	for d in "$MNT/images/$1/pool"/*/; do
		[ -d "$d" ] && rmdir "$d"
	done
	return 0
}

@test "every image of the directory is listed with its files" {
	run ls "$MNT/images"
	[ "$status" -eq 0 ]
	[[ "$output" == *one* && "$output" == *two* ]]
	for f in pool stats config manifest; do
		[ -e "$MNT/images/one/$f" ]
	done
	[ "$(kv "$MNT/images/two/config" pool)" = closed ]
	[ "$(kv "$MNT/images/two/config" min)" = 0 ] # its pool.conf, before the first use
	[ "$(kv "$MNT/config" images)" = "$IMGS" ]
	cmp "$MNT/images/one/manifest" "$IMGS/one/manifest"
}

@test "two images used side by side, each with its own pool" {
	mkdir "$MNT/images/one/pool/a" "$MNT/images/two/pool/b" "$MNT/pool/c"
	vp_run "$MNT/images/one/pool/a" 'echo A > /mark'
	vp_run "$MNT/images/two/pool/b" 'cat /mark 2>&1; echo B > /mark'
	[ "$(cat "$MNT/images/two/pool/b/stdout")" = "cat: can't open '/mark': No such file or directory" ]
	vp_run "$MNT/images/one/pool/a" 'cat /mark'
	[ "$(cat "$MNT/images/one/pool/a/stdout")" = A ]
	[ "$(kv "$MNT/images/two/config" pool)" = open ]
	[ "$(kv "$MNT/images/two/config" min)" = 0 ]
	[ "$(kv "$MNT/images/one/stats" in_use)" = 1 ]
	[ "$(kv "$MNT/images/two/stats" in_use)" = 1 ]
	[ "$(ls "$MNT/images/one/pool")" = a ]
	[ "$(ls "$MNT/pool")" = c ]
	# a name is per pool/ directory
	mkdir "$MNT/images/two/pool/a"
	rmdir "$MNT/images/one/pool/a" "$MNT/images/two/pool/b" "$MNT/images/two/pool/a" "$MNT/pool/c"
}

@test "a snapshot starts two machines at once from the state, each its own" {
	mkdir "$MNT/images/one/pool/s"
	vp_run "$MNT/images/one/pool/s" 'mkdir -p /data && echo base > /data/f && rm /bin/vi && sleep 1000 &'
	echo 'snapshot snap1' > "$MNT/images/one/pool/s/ctl"
	[ -d "$MNT/images/snap1/pool" ]
	[ "$(kv "$MNT/images/snap1/manifest" kind)" = snapshot ]
	[ "$(kv "$MNT/images/snap1/manifest" parent)" = one ]
	[ "$(cat "$IMGS/snap1/parent")" = one ]
	grep -q 'snapshot snap1 made' "$MNT/images/one/pool/s/log"
	# the machine goes on after the snapshot
	vp_run "$MNT/images/one/pool/s" 'cat /data/f'
	[ "$(cat "$MNT/images/one/pool/s/stdout")" = base ]
	rmdir "$MNT/images/one/pool/s"
	mkdir "$MNT/images/snap1/pool/x" "$MNT/images/snap1/pool/y"
	echo 'cat /data/f; echo x >> /data/f' > "$MNT/images/snap1/pool/x/cmd"
	echo 'cat /data/f; test -e /bin/vi || echo novi; echo y >> /data/f' > "$MNT/images/snap1/pool/y/cmd"
	[ "$(cat "$MNT/images/snap1/pool/x/stdout")" = base ]
	[ "$(cat "$MNT/images/snap1/pool/y/stdout")" = "$(printf 'base\nnovi')" ]
	vp_run "$MNT/images/snap1/pool/x" 'cat /data/f'
	[ "$(cat "$MNT/images/snap1/pool/x/stdout")" = "$(printf 'base\nx')" ]
	vp_run "$MNT/images/snap1/pool/y" 'cat /data/f'
	[ "$(cat "$MNT/images/snap1/pool/y/stdout")" = "$(printf 'base\ny')" ]
	release_all snap1
}

@test "snapshot of a snapshot stacks both layers" {
	mkdir "$MNT/images/snap1/pool/z"
	vp_run "$MNT/images/snap1/pool/z" 'echo second > /data/g'
	echo 'snapshot snap2' > "$MNT/images/snap1/pool/z/ctl"
	rmdir "$MNT/images/snap1/pool/z"
	mkdir "$MNT/images/snap2/pool/w"
	vp_run "$MNT/images/snap2/pool/w" 'cat /data/f /data/g'
	[ "$(cat "$MNT/images/snap2/pool/w/stdout")" = "$(printf 'base\nsecond')" ]
	[ "$(kv "$MNT/images/snap1/config" children)" = 1 ]
}

@test "rmdir of an image in use or with snapshots is EBUSY, then removes it" {
	run rmdir "$MNT/images/snap2"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Device or resource busy"* ]]
	run rmdir "$MNT/images/snap1"
	[[ "$output" == *"Device or resource busy"* ]]
	release_all snap2
	rmdir "$MNT/images/snap2"
	[ ! -e "$MNT/images/snap2" ]
	[ ! -e "$IMGS/snap2" ]
	[ "$(kv "$MNT/images/snap1/config" children)" = 0 ]
	run ls -A "$IMGS"
	[[ "$output" != *.tmp* ]]
}

@test "bad input: bad names, an existing name, a snapshot while a command runs" {
	mkdir "$MNT/images/one/pool/b"
	m=$MNT/images/one/pool/b
	for bad in '../x' 'a/b' '.hidden' "$(printf 'n%.0s' $(seq 70))"; do
		run bash -c "echo 'snapshot $bad' > '$m/ctl'"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Invalid argument"* ]]
	done
	run bash -c "echo 'snapshot two' > '$m/ctl'"
	[[ "$output" == *"File exists"* ]]
	echo 'sleep 30' > "$m/cmd"
	run bash -c "echo 'snapshot busy1' > '$m/ctl'"
	[[ "$output" == *"Device or resource busy"* ]]
	grep -q 'snapshot busy1 refused: a command is running' "$m/log"
	echo kill > "$m/ctl"
	cat "$m/exit" >/dev/null
	[ ! -e "$MNT/images/busy1" ]
	run ls -A "$IMGS"
	[[ "$output" != *.tmp* && "$output" != *busy1* ]]
	rmdir "$m"
	# the default image, images/ itself and unknown names
	run mkdir "$MNT/images/new"
	[ "$status" -ne 0 ]
	run rmdir "$MNT/images/nosuch"
	[[ "$output" == *"No such file"* ]]
}

@test "an image the builder adds or removes on disk appears and goes" {
	cp -a "$IMGS/one" "$IMGS/.tmp-three.x"
	mv "$IMGS/.tmp-three.x" "$IMGS/three"
	[ -d "$MNT/images/three/pool" ]
	mkdir "$MNT/images/three/pool/t"
	vp_run "$MNT/images/three/pool/t" 'true'
	rmdir "$MNT/images/three/pool/t"
	rm -rf "$IMGS/three"
	run ls "$MNT/images"
	[[ "$output" != *three* ]]
	# the kernel may keep the entry for its 1 s cache
	wait_for "[ ! -e '$MNT/images/three' ]"
}

@test "images and snapshots survive a restart" {
	vp_mount2 "images=$IMGS"
	[ -d "$MNT2/images/snap1" ]
	[ "$(kv "$MNT2/images/one/config" children)" = 1 ]
	mkdir "$MNT2/images/snap1/pool/r"
	echo 'cat /data/f' > "$MNT2/images/snap1/pool/r/cmd"
	[ "$(cat "$MNT2/images/snap1/pool/r/stdout")" = base ]
	rmdir "$MNT2/images/snap1/pool/r"
	vp_unmount2
	rm -rf "$D2"
}
