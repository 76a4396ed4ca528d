#!/usr/bin/env bash
# Sets everything up, builds, and mounts the vmpoolfs tree in the foreground.
# Usage: scripts/run.sh [MOUNTPOINT] [vmpoolfs options...]   (default /mnt/vmpool)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mnt=${1:-/mnt/vmpool}
[ $# -gt 0 ] && shift
mkdir -p "$mnt"
cat >&2 <<USAGE
vmpoolfs: mounting on $mnt (Ctrl-C to unmount). From another shell:
  mkdir $mnt/pool/job                # acquire a machine
  echo 'uname -a; seq 3' > $mnt/pool/job/cmd
  cat $mnt/pool/job/stdout; cat $mnt/pool/job/exit
  ls $mnt/pool/job/root/             # the guest's filesystem
  rmdir $mnt/pool/job                # reset it and give it back
USAGE
# The default image (issue 10): Debian with bash, coreutils, make, python3,
# built once into the state directory (quick "up to date" afterwards),
# unless the options name an image.
case " $* " in *image=*) ;; *)
	images=${VMPOOL_IMAGES:-/var/lib/vmpoolfs/images}
	build/image-tool/vmpoolfs-image --images "$images" build default \
		--packages bash,coreutils,make,python3
	set -- -o "image=$images/default" "$@" ;;
esac
exec build/fs/vmpoolfs -f "$@" "$mnt"
