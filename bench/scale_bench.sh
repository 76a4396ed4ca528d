#!/usr/bin/env bash
# Scale bench (issue 12): acquire (miss), command and release latencies
# against the number of machines held, with the daemon's fds and the
# host's memory per machine; prints bench/scale_lat's table, the ratios
# against N=1, and plots latency against machines held (gnuplot, when
# installed) into BUILD/scale.png.
# Usage: scale_bench.sh BUILD [N...]   (default N: 1 100 1000; needs root)
# The host's pid_max and file-max bound max_machines (fs/budget.c): past
# what they allow the daemon refuses to start and says why.
set -euo pipefail
build=$(cd "$1" && pwd); shift
ns=("$@"); [ ${#ns[@]} -gt 0 ] || ns=(1 100 1000)
max=${ns[${#ns[@]}-1]}
k=${SCALE_K:-20}
dir=$(mktemp -d /tmp/vpfs-scale.XXXXXX)
mkdir "$dir/mnt"
"$build/fs/vmpoolfs" -f -o "min=0,max=1,max_machines=$((max + k + 4)),pids=16,nofile=256,image=$build/image" \
	"$dir/mnt" > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
	[ -e "$dir/mnt/config" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
	sleep 0.05
done
"$build/bench/scale_lat" "$dir/mnt" "$pid" "$k" "${ns[@]}" | tee "$dir/data"
t0=$(date +%s.%N)
fusermount3 -u "$dir/mnt"
wait "$pid" || true
echo "# unmount_s $(echo "$(date +%s.%N) - $t0" | bc)"
base=$(sed -n 's/^# base fds //p' "$dir/data")
awk -v base="$base" '!/^#/ { if (!m) { m = $2; r = $6 }
	printf "N=%d miss %.2fx rmdir %.2fx fds/machine %.2f\n", $1, $2 / m, $6 / r, ($9 - base) / $1 }' "$dir/data"
if command -v gnuplot > /dev/null; then
	gnuplot <<GP
set terminal png size 800,500
set output "$build/scale.png"
set logscale x
set xlabel "machines held"
set ylabel "p50 latency (ms)"
set key left top
plot "$dir/data" using 1:2 with linespoints title "mkdir (miss)", \
     "" using 1:4 with linespoints title "command round trip", \
     "" using 1:6 with linespoints title "rmdir", \
     "" using 1:8 with linespoints title "mkdir (warm)"
GP
	echo "plot: $build/scale.png"
fi
rm -rf "$dir"
