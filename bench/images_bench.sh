#!/usr/bin/env bash
# Image benchmarks of vmpoolfs (docs/benchmarks.md, "images"):
#   - ctl `snapshot NAME` of a machine with SIZE_MB of changes (ns: frozen
#     copy of its writable layer), REPS runs
#   - mkdir images/NAME/pool/JOB: a miss (a boot) and a warm hit, from the
#     base image and from a snapshot of it (one layer more), N samples each
# Usage: bench/images_bench.sh [BUILDDIR]  (needs root). Env: N (20),
# SIZE_MB (100), REPS (5).
set -euo pipefail
B=${1:-build}
VMPOOLFS=${VMPOOLFS:-$B/fs/vmpoolfs}
IMAGE=${VMPOOL_IMAGE:-$B/image}
N=${N:-20}
SIZE_MB=${SIZE_MB:-100}
REPS=${REPS:-5}

work=$(mktemp -d /tmp/images_bench.XXXXXX)
cleanup() {
	mountpoint -q "$work/mnt" && fusermount3 -u "$work/mnt"
	sleep 0.5
	rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/images" "$work/mnt"
cp -a "$IMAGE" "$work/images/base"
# min=0 for the others: a miss is a miss; the pool keeps released machines.
printf 'min=0\n' > "$work/images/base/pool.conf"
"$VMPOOLFS" -o "min=1,images=$work/images,image=$IMAGE" "$work/mnt"
M=$work/mnt
ms() { date +%s%N; }
stats() { # label, then values in ms on stdin
	sort -n | awk -v l="$1" '{v[NR]=$1} END {printf "%-34s p50 %8.1f ms  p95 %8.1f ms  (n=%d)\n", l, v[int((NR+1)/2)], v[int(NR*0.95+0.999)], NR}'
}

mkdir "$M/images/base/pool/w"
echo "dd if=/dev/urandom of=/big bs=1M count=$SIZE_MB status=none" > "$M/images/base/pool/w/cmd"
cat "$M/images/base/pool/w/exit" >/dev/null
for r in $(seq 1 "$REPS"); do
	t0=$(ms)
	echo "snapshot snap$r" > "$M/images/base/pool/w/ctl"
	echo $(( ($(ms) - t0) / 1000 ))
done | awk '{printf "%.1f\n", $1/1000}' | stats "snapshot, ${SIZE_MB} MB changed"
rmdir "$M/images/base/pool/w"
for r in $(seq 2 "$REPS"); do rmdir "$M/images/snap$r"; done
printf 'min=0\n' > "$work/images/snap1/pool.conf"

for img in base snap1; do
	P=$M/images/$img/pool
	# misses: release with max idle 0 is not an option here, so acquire N
	# at once (each a boot), then release them and acquire again (hits).
	for i in $(seq 1 "$N"); do
		t0=$(ms); mkdir "$P/m$i"; echo $(( ($(ms) - t0) / 1000 ))
	done | awk '{printf "%.1f\n", $1/1000}' | stats "acquire miss, $img"
	for i in $(seq 1 "$N"); do rmdir "$P/m$i"; done
	sleep 3 # resets in the background
	for i in $(seq 1 "$N"); do
		t0=$(ms); mkdir "$P/h$i"; echo $(( ($(ms) - t0) / 1000 ))
		rmdir "$P/h$i"; sleep 0.3
	done | awk '{printf "%.1f\n", $1/1000}' | stats "acquire warm, $img"
done
