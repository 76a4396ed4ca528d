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
exec build/fs/vmpoolfs -f "$@" "$mnt"
