#!/usr/bin/env bash
# Builds the guest image from Debian packages only (docs/design.md §4):
#   OUT/rootfs/            the tree: busybox applets, /init = the agent, the
#                          virtio modules; owned by the unprivileged uid/gid
#                          that guest root maps to in the ns backend
#   OUT/initramfs.cpio.gz  the same tree as a newc cpio (owned by 0:0) for kvm
#   OUT/vmlinuz            the kernel of linux-image-amd64 (bzImage)
# Usage: build-image.sh OUT AGENT STAMP
# Rebuilds only when an input changes (agent binary, this script, the .debs).
# Downloaded .debs are cached in $VMPOOL_DEB_CACHE (default OUT/../image-debs).
set -euo pipefail

out=$1 agent=$2 stamp=$3
ns_uid_base=${VMPOOL_NS_UID_BASE:-1000000000}
cache=${VMPOOL_DEB_CACHE:-$(dirname "$out")/image-debs}
mkdir -p "$out" "$cache"
log() { echo "build-image: $*" >&2; }

# The kernel package behind the metapackage changes as Debian updates it.
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ { print $2; exit }')

fetch() { # fetch PKG → prints the cached .deb path (empty if unavailable)
	local pkg=$1 deb
	deb=$(ls "$cache"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
	if [ -z "$deb" ]; then
		(cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) ||
			(apt-get update -qq >/dev/null 2>&1 && cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) || true
		deb=$(ls "$cache"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
	fi
	echo "$deb"
}

busybox_deb=$(fetch busybox-static)
[ -n "$busybox_deb" ] || { log "cannot download busybox-static"; exit 1; }
kernel_deb=""
if [ -n "$kernel_pkg" ]; then kernel_deb=$(fetch "$kernel_pkg"); fi
# The ns backend needs no kernel; the kvm backend reports its absence itself.
[ -n "$kernel_deb" ] || log "warning: no kernel package (${kernel_pkg:-unresolved}); vmlinuz not built"

inputs=$( { sha256sum "$agent" "$0"; basename "$busybox_deb"; basename "${kernel_deb:-none}"; echo "$ns_uid_base"; } | sha256sum | cut -d' ' -f1)
if [ -f "$out/.inputs" ] && [ "$(cat "$out/.inputs")" = "$inputs" ] && [ -d "$out/rootfs" ]; then
	touch "$stamp"
	exit 0
fi
log "building image in $out"

work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,mnt,home,var/tmp,lib/modules}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 700 "$root/root"

dpkg-deb -x "$busybox_deb" "$work/bb"
install -m 0755 "$work/bb/bin/busybox" "$root/bin/busybox"
# Every applet at its usual path, as `busybox --install -s` would do.
"$root/bin/busybox" --list-full | while read -r applet; do
	[ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
install -m 0755 "$agent" "$root/init"

cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$root/etc/hosts"
echo vmpool > "$root/etc/hostname"

if [ -n "$kernel_deb" ]; then
	dpkg-deb --fsys-tarfile "$kernel_deb" | tar -x -C "$work" --wildcards \
		'./boot/vmlinuz-*' \
		'./lib/modules/*/kernel/drivers/virtio/virtio.ko*' \
		'./lib/modules/*/kernel/drivers/virtio/virtio_ring.ko*' \
		'./lib/modules/*/kernel/drivers/virtio/virtio_mmio.ko*' \
		'./lib/modules/*/kernel/drivers/char/virtio_console.ko*'
	cp "$work"/boot/vmlinuz-* "$work/vmlinuz"
	cp -a "$work"/lib/modules/* "$root/lib/modules/"
fi

# The kernel opens /dev/console for init before anything is mounted.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || log "warning: cannot mknod dev/console (not root?)"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -n -6 > "$work/initramfs.cpio.gz"

# Guest root is this uid/gid on the host (ns backend): the tree must be theirs.
chown -R -h "$ns_uid_base:$ns_uid_base" "$root" 2>/dev/null || log "warning: cannot chown rootfs to $ns_uid_base"

rm -rf "$out/rootfs" "$out/vmlinuz" "$out/initramfs.cpio.gz"
mv "$root" "$out/rootfs"
mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
[ -f "$work/vmlinuz" ] && mv "$work/vmlinuz" "$out/vmlinuz"
{ echo "kernel_package=${kernel_pkg:-}"; echo "kernel_deb=$(basename "${kernel_deb:-none}")";
  echo "busybox_deb=$(basename "$busybox_deb")"; echo "ns_uid_base=$ns_uid_base"; } > "$out/manifest"
echo "$inputs" > "$out/.inputs"
touch "$stamp"
log "done"
