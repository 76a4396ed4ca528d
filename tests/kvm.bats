#!/usr/bin/env bats
# The tree over the kvm backend, end to end through a real mount, with our
# conformance guest as the kernel: on PVM hosts a Linux guest cannot boot
# (docs/design.md §3), and that guest speaks the handshake, PING and SET_TIME and
# stops at an EXEC. Enough to check acquire and release (snapshot
# restores), config, log, a guest that dies under a command, and a clean
# unmount, with backend=kvm.

load helpers

# Bats 1.8 cannot skip from setup_file (it reports a failure), so a host
# without a usable /dev/kvm sets KVM_SKIP there and each test skips with it.
setup_file() {
	export KVM_SKIP=""
	if [ ! -c /dev/kvm ]; then
		KVM_SKIP="no /dev/kvm on this host"
		return 0
	fi
	local guest=$VP_BUILDDIR/tests/kvm/guest/kvm-conformance-guest.bzImage
	[ -f "$guest" ] || { echo "no conformance guest at $guest" >&2; return 1; }
	KIMG=$(mktemp -d /tmp/vpfs-kimg.XXXXXX)
	mkdir "$KIMG/tmp"
	cp "$guest" "$KIMG/vmlinuz"
	echo unused | gzip > "$KIMG/initramfs.cpio.gz"
	export KIMG
	if ! TMPDIR=$KIMG/tmp VMPOOL_IMAGE=$KIMG vp_mount "backend=kvm,mem=64M,max=2"; then
		if grep -q "/dev/kvm" "$VP_DIR/log" 2>/dev/null; then
			KVM_SKIP="kvm unusable here: $(grep /dev/kvm "$VP_DIR/log" | head -1)"
			rm -rf "$KIMG"
			KIMG=
			return 0
		fi
		return 1
	fi
}

teardown_file() {
	if [ -n "${KIMG:-}" ]; then
		vp_unmount
		# the backend's runtime directory (template, snapshot, logs) is gone
		[ -z "$(ls -A "$KIMG/tmp")" ]
		rm -rf "$KIMG"
	fi
}

setup() {
	if [ -n "$KVM_SKIP" ]; then
		skip "$KVM_SKIP"
	fi
}

@test "kvm: config says backend=kvm and why" {
	[ "$(kv "$MNT/config" backend)" = kvm ]
	[[ "$(kv "$MNT/config" backend_reason)" == "requested in the configuration; template booted to READY in "*" ms" ]]
}

@test "kvm: mkdir restores a machine that was told the time; log shows it" {
	mkdir "$MNT/pool/a"
	[ "$(kv "$MNT/pool/a/stat" state)" = idle ]
	local sec now
	sec=$(sed -n 's/^time sec=\([0-9]*\) nsec=[0-9]*$/\1/p' "$MNT/pool/a/log")
	now=$(date +%s)
	[ -n "$sec" ] && [ $((now - sec)) -ge 0 ] && [ $((now - sec)) -le 10 ]
	# once: the template's boot is not in a machine's log
	[ "$(grep -c '^time sec=' "$MNT/pool/a/log")" = 1 ]
	! grep -q 'kvm-conformance-guest' "$MNT/pool/a/log"
	rmdir "$MNT/pool/a"
}

@test "kvm: two machines at once, each its own log" {
	mkdir "$MNT/pool/a" "$MNT/pool/b"
	[ "$(grep -c '^time sec=' "$MNT/pool/a/log")" = 1 ]
	[ "$(grep -c '^time sec=' "$MNT/pool/b/log")" = 1 ]
	rmdir "$MNT/pool/a" "$MNT/pool/b"
}

@test "kvm: a guest that stops under a command: EIO, not a hang; state=error; rmdir releases" {
	mkdir "$MNT/pool/d"
	echo true > "$MNT/pool/d/cmd"
	run timeout 20 cat "$MNT/pool/d/exit"
	[ "$status" -ne 124 ]
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	[ "$(kv "$MNT/pool/d/stat" state)" = error ]
	[[ "$(kv "$MNT/pool/d/stat" error)" == "guest connection lost: "* ]]
	grep -q '^\[vmpoolfs: the guest stopped' "$MNT/pool/d/log"
	run bash -c "echo true > '$MNT/pool/d/cmd'"
	[ "$status" -ne 0 ]
	rmdir "$MNT/pool/d"
	# the pool replaces the dead machine; the next one works
	mkdir "$MNT/pool/e"
	[ "$(grep -c '^time sec=' "$MNT/pool/e/log")" = 1 ]
	rmdir "$MNT/pool/e"
}
