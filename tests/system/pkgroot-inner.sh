#!/usr/bin/env bash
# Runs in its own mount namespace (package.bats: unshare -m): moves into
# ROOT (pivot_root), mounts from the package installed there, runs one
# command in a machine, unmounts.
# Usage: pkgroot-inner.sh ROOT IMAGE TOKEN OUTDIR
set -euo pipefail
root=$1 image=$2 token=$3 out=$4
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mkdir -p "$root/srv/image" "$root/mnt/vp"
mount --bind "$image" "$root/srv/image"
mkdir -p "$root/out" "$root/.oldroot"
mount --bind "$out" "$root/out"
# pivot_root, not chroot: the kernel refuses user namespaces (the ns
# backend) to a chrooted process.
mount --rbind "$root" "$root" # with the mounts above
cd "$root"
pivot_root . .oldroot
cd /
# The old root stays mounted at /.oldroot until the namespace ends.
out=/out
/usr/bin/vmpoolfs -f -o min=1,image=/srv/image /mnt/vp >"$out/daemon.log" 2>&1 &
d=$!
m=/mnt/vp
for _ in $(seq 1 400); do
	[ -e "$m/config" ] && break
	kill -0 "$d" 2>/dev/null || { echo "daemon exited: $(cat "$out/daemon.log")" >&2; exit 1; }
	sleep 0.05
done
mkdir "$m/pool/t"
echo "echo $token; cat /etc/hostname" > "$m/pool/t/cmd"
cat "$m/pool/t/stdout" > "$out/stdout"
cat "$m/pool/t/exit" > "$out/exit"
rmdir "$m/pool/t"
fusermount3 -u "$m" # fuse3 is in the root, umount (mount) is not
wait "$d"; echo $? > "$out/daemon.rc"
