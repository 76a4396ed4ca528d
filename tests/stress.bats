#!/usr/bin/env bats
# Many users at once doing everything in random order for a while: acquire,
# commands of every kind, readers, kills, stdin, root/ writes, releases,
# agents killed under them. Nothing may hang (every operation is bounded),
# every answer must be one a user can get, and afterwards the daemon must
# still serve, unmount cleanly and leave no process (under the sanitized
# build: no report either).

load helpers

setup_file() { vp_mount "min=2,max=4,max_machines=8,timeout=5"; }
teardown_file() { vp_unmount; }

# One user: SECS seconds of random operations on names u$1-0..u$1-2.
# Unexpected answers are written to $VP_DIR/bad.$1.
user() {
	set +e # failures are expected answers here; hangs are what counts
	local id=$1 end=$((SECONDS + $2)) n d op rc hp
	RANDOM=$((id * 7919))
	while [ $SECONDS -lt $end ]; do
		n=u$id-$((RANDOM % 3))
		d=$MNT/pool/$n
		op=$((RANDOM % 12))
		case $op in
		0 | 1) timeout 10 mkdir "$d" 2>/dev/null ;;
		2) timeout 10 rmdir "$d" 2>/dev/null ;;
		3) timeout 10 sh -c "echo 'seq 1 2000' > '$d/cmd'" 2>/dev/null ;;
		4) timeout 10 sh -c "echo 'sleep 0.3; exit 7' > '$d/cmd'" 2>/dev/null ;;
		5) timeout 10 sh -c "echo 'cat > /tmp/in; wc -c < /tmp/in' > '$d/cmd' && printf abc > '$d/stdin'" 2>/dev/null ;;
		6) timeout 10 cat "$d/stdout" > /dev/null 2>&1
		   [ $? -eq 124 ] && echo "stdout read hung on $n" >> "$VP_DIR/bad.$id" ;;
		7) timeout 10 cat "$d/exit" > /dev/null 2>&1
		   [ $? -eq 124 ] && echo "exit read hung on $n" >> "$VP_DIR/bad.$id" ;;
		8) timeout 10 sh -c "echo kill > '$d/ctl'" 2>/dev/null ;;
		9) timeout 10 sh -c "head -c 200000 /dev/urandom > '$d/root/tmp/f'" 2>/dev/null ;;
		10) timeout 10 cat "$d/stat" "$d/log" "$MNT/stats" > /dev/null 2>&1 ;;
		11) if [ $((RANDOM % 4)) = 0 ]; then
			hp=$(kv "$d/stat" host_pid 2>/dev/null)
			[ -n "$hp" ] && [ "$hp" -gt 0 ] && kill -9 "$hp" 2>/dev/null
		    fi ;;
		esac
		rc=$?
		[ "$rc" = 124 ] && echo "op $op on $n hung" >> "$VP_DIR/bad.$id"
	done
	return 0
}

@test "4 users, 12 s of everything at once: no hang, then the tree still serves" {
	local pids=() i
	for i in 1 2 3 4; do
		user "$i" 12 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i"
	done
	if ls "$VP_DIR"/bad.* > /dev/null 2>&1; then
		cat "$VP_DIR"/bad.* >&2
		false
	fi
	# whatever state each user left, the tree answers and still works
	for d in "$MNT"/pool/*/; do
		[ -d "$d" ] && timeout 20 rmdir "$d"
	done
	[ -z "$(ls "$MNT/pool")" ]
	mkdir "$MNT/pool/after"
	echo 'echo fine' > "$MNT/pool/after/cmd"
	[ "$(timeout 20 cat "$MNT/pool/after/stdout")" = fine ]
	rmdir "$MNT/pool/after"
	[ "$(kv "$MNT/stats" in_use)" = 0 ]
}
