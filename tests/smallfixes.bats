#!/usr/bin/env bats
# Issue 9's smaller items: statfs of root/ is the guest's `df /`, the
# guest's /tmp is bounded by -o disk=, and the daemon exits promptly once
# unmounted.

load helpers

setup_file() { vp_mount "disk=64M"; }
teardown_file() { vp_unmount; }

us() { echo "${EPOCHREALTIME/./}"; }

# "total used available" in KiB of `df -Pk` output on stdin
df_kib() { awk 'NR == 2 { print $2, $3, $4 }'; }

@test "statfs of root/ is the guest's df / (its writable layer), after 20 MiB written" {
	mkdir "$MNT/pool/df"
	local M=$MNT/pool/df
	vp_run df 'dd if=/dev/zero of=/fill bs=1M count=20 2>/dev/null && sync && df -Pk /'
	local guest host
	guest=$(df_kib < "$M/stdout")
	host=$(df -Pk "$M/root" | df_kib)
	echo "guest: $guest, host: $host" >&2
	[ "$guest" = "$host" ]
	read -r total used avail <<< "$host"
	[ "$total" -eq 65536 ]
	[ "$used" -ge 20480 ]
	[ $((used + avail)) -eq "$total" ]
	# Any path below root/ is the same filesystem, /tmp included.
	[ "$(df -Pk "$M/root/etc" | df_kib)" = "$host" ]
	[ "$(df -Pk "$M/root/tmp" | df_kib)" = "$host" ]
	rmdir "$M"
}

@test "the guest's /tmp is bounded by disk=: ENOSPC past it, and counted in df /" {
	mkdir "$MNT/pool/tmp"
	local M=$MNT/pool/tmp
	vp_run tmp 'df -Pk /tmp; ls -ld /tmp'
	[ "$(head -n 2 "$M/stdout" | df_kib | cut -d' ' -f1)" -eq 65536 ]
	grep -q '^drwxrwxrwt' "$M/stdout"
	echo 'dd if=/dev/zero of=/tmp/big bs=1M count=80' > "$M/cmd"
	[ "$(cat "$M/exit")" != 0 ]
	grep -q "No space left on device" "$M/stderr"
	read -r _ used avail < <(df -Pk "$M/root" | df_kib)
	[ "$avail" -lt 1024 ]
	vp_run tmp 'rm /tmp/big'
	read -r _ used _ < <(df -Pk "$M/root" | df_kib)
	[ "$used" -lt 1024 ]
	# A released machine's /tmp does not reach the next user.
	vp_run tmp 'echo left > /tmp/mark'
	rmdir "$M"
	mkdir "$MNT/pool/tmp2"
	[ ! -e "$MNT/pool/tmp2/root/tmp/mark" ]
	rmdir "$MNT/pool/tmp2"
}

@test "the daemon exits within 0.5 s of fusermount3 -u, a command still running" {
	vp_mount2 "min=2"
	mkdir "$MNT2/pool/busy" "$MNT2/pool/idle"
	echo 'sleep 100' > "$MNT2/pool/busy/cmd"
	local kids t0 t1
	kids=$(vp_descendants "$PID2")
	t0=$(us)
	fusermount3 -u "$MNT2"
	wait "$PID2"
	t1=$(us)
	echo "exited $(((t1 - t0) / 1000)) ms after the unmount" >&2
	[ $((t1 - t0)) -lt 500000 ]
	vp_exited_clean 0 "$kids" "$D2/log"
	rm -rf "$D2"
}

# Without -f the daemon is an orphan; its pid lasts until PID 1 reaps it
# (1.3-1.9 s with this sandbox's init), so "exited" is: zombie or gone.
@test "without -f the daemon exits within 0.5 s of fusermount3 -u" {
	local D M pid t0 t1 st
	D=$(mktemp -d /tmp/vpfs-bats-3.XXXXXX)
	M=$D/mnt
	mkdir "$M"
	"$VMPOOLFS" -o "min=1,image=$VMPOOL_IMAGE" "$M" 2> "$D/log"
	pid=$(pgrep -n -f -- "$M")
	[ "$(readlink "/proc/$pid/cwd")" = / ]
	mkdir "$M/pool/j"
	echo 'sleep 100' > "$M/pool/j/cmd"
	t0=$(us)
	fusermount3 -u "$M"
	while st=$(awk '/^State/ { print $2 }' "/proc/$pid/status" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; do
		[ $(($(us) - t0)) -lt 5000000 ] || break
		sleep 0.005
	done
	t1=$(us)
	echo "exited $(((t1 - t0) / 1000)) ms after the unmount" >&2
	[ $((t1 - t0)) -lt 500000 ]
	rm -rf "$D"
}
