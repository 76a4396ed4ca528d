#!/usr/bin/env bash
# Sets everything up, builds, and mounts the vmpoolfs tree until Ctrl-C
# (or SIGTERM), which unmounts it.
# Usage: scripts/run.sh [MOUNTPOINT] [vmpoolfs options...]
#   MOUNTPOINT: default $VMPOOL_MNT, else /mnt/vmpool.
#   Options as vmpoolfs takes them (-o min=2,timeout=60, -d), or bare
#   words, each one -o option (min=2 timeout=60 allow_other).
#   scripts/run.sh                      scripts/run.sh -o min=2
#   scripts/run.sh /mnt/x -o min=2      scripts/run.sh /mnt/x min=2
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

mnt=${VMPOOL_MNT:-/mnt/vmpool}
if [ $# -gt 0 ] && [[ $1 != -* && $1 != *=* ]]; then
	mnt=$1
	shift
fi
opts=()
while [ $# -gt 0 ]; do
	case $1 in
	-o) opts+=(-o "${2:?-o needs a value}"); shift ;;
	-*) opts+=("$1") ;;
	*) opts+=(-o "$1") ;;
	esac
	shift
done

# The guest image: $VMPOOL_IMAGE; else, unless the options name one, the
# default image: Debian with bash, coreutils, make and python3, built once
# into the state directory's images (later starts answer "up to date").
image=${VMPOOL_IMAGE:-}
case " ${opts[*]-} " in
*image=*) ;;
*)
	if [ -z "$image" ]; then
		images=${VMPOOL_IMAGES:-/var/lib/vmpoolfs/images}
		build/image-tool/vmpoolfs-image --images "$images" build default \
			--packages bash,coreutils,make,python3
		image=$images/default
	fi
	;;
esac

mkdir -p "$mnt"
# The daemon in the background (in the foreground of its own: -f), so that
# the banner comes once the tree is there and Ctrl-C reaches it as SIGTERM.
build/fs/vmpoolfs -f ${image:+-o "image=$image"} ${opts[@]+"${opts[@]}"} "$mnt" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM HUP
until mountpoint -q "$mnt" && [ -e "$mnt/config" ]; do
	if ! kill -0 "$pid" 2>/dev/null; then
		status=0
		wait "$pid" || status=$?
		echo "vmpoolfs: not mounted (status $status)" >&2
		exit $((status ? status : 1))
	fi
	sleep 0.1
done
cat >&2 <<USAGE
vmpoolfs: mounted on $mnt (Ctrl-C to unmount). From another shell:
  mkdir $mnt/pool/job                # acquire a machine
  echo 'uname -a; seq 3' > $mnt/pool/job/cmd
  cat $mnt/pool/job/stdout; cat $mnt/pool/job/exit
  ls $mnt/pool/job/root/             # the guest's filesystem
  rmdir $mnt/pool/job                # reset it and give it back
USAGE
# wait returns early when a trapped signal comes: wait again for the end.
status=0
while kill -0 "$pid" 2>/dev/null; do
	status=0
	wait "$pid" || status=$?
done
exit "$status"
