#!/usr/bin/env bats
# pool/NAME/cmd: writing and closing runs a command (docs/design.md §1 cmd).

load helpers

setup_file() {
	vp_mount
	mkdir "$MNT/pool/c"
}
teardown_file() { vp_unmount; }

setup() { M=$MNT/pool/c; }

@test "echo 'seq 3' > cmd && cat stdout prints 1 2 3" {
	echo 'seq 3' > "$M/cmd"
	run cat "$M/stdout"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf '1\n2\n3')" ]
}

@test "reading cmd gives the last command text" {
	echo 'echo one' > "$M/cmd"
	cat "$M/exit" >/dev/null
	[ "$(cat "$M/cmd")" = "echo one" ]
	grep -qx 'cmd=echo one' "$M/stat"
}

@test "text in several writes runs once, at close" {
	{ printf 'echo '; sleep 0.2; printf 'in'; printf ' parts\n'; } > "$M/cmd"
	[ "$(cat "$M/stdout")" = "in parts" ]
	[ "$(kv "$M/stat" cmd)" = "echo in parts" ]
}

@test "a multi-line script runs whole" {
	printf 'a=1\nb=2\necho $((a+b))\n' > "$M/cmd"
	[ "$(cat "$M/stdout")" = "3" ]
	[ "$(kv "$M/stat" cmd)" = 'a=1\nb=2\necho $((a+b))' ]
}

@test "a second command while one runs fails with EBUSY and non-zero status" {
	echo 'sleep 2' > "$M/cmd"
	run bash -c "echo 'echo no' > '$M/cmd'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Device or resource busy"* ]]
	run /bin/echo x
	run sh -c "/bin/echo 'echo no' > '$M/cmd'"
	[ "$status" -ne 0 ]
	[ "$(kv "$M/stat" cmd)" = "sleep 2" ]
	cat "$M/exit"
}

@test "starting a command empties stdout and stderr and sets state=running" {
	echo 'echo old; echo olderr >&2' > "$M/cmd"
	cat "$M/exit" >/dev/null
	[ "$(cat "$M/stderr")" = "olderr" ]
	echo 'sleep 1; echo new' > "$M/cmd"
	[ "$(kv "$M/stat" state)" = running ]
	[ "$(stat -c %s "$M/stdout")" = 0 ]
	[ "$(stat -c %s "$M/stderr")" = 0 ]
	[ "$(cat "$M/stdout")" = "new" ]
	[ -z "$(cat "$M/stderr")" ]
}

@test "a command over 128 KiB fails with E2BIG" {
	run bash -c "head -c 140000 /dev/zero | tr '\\0' a > '$M/cmd'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Argument list too long"* ]]
	[ "$(kv "$M/stat" state)" != running ]
}

@test "a command of exactly 128 KiB - 1 bytes runs" {
	# ": aaaa...": a no-op of the largest size /bin/sh -c accepts
	{ printf ': '; head -c $((131072 - 3)) /dev/zero | tr '\0' a; } > "$M/cmd"
	[ "$(cat "$M/exit")" = 0 ]
}

@test "a command containing NUL fails with EINVAL" {
	run bash -c "printf 'echo a\\0b' > '$M/cmd'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
}

@test "open and close of cmd without text starts nothing" {
	echo 'echo marker' > "$M/cmd"
	cat "$M/exit" >/dev/null
	: > "$M/cmd"
	[ "$(cat "$M/cmd")" = "echo marker" ]
	[ "$(cat "$M/stdout")" = "marker" ]
}

@test "files cannot be created or removed in a machine's directory" {
	run touch "$M/newfile"
	[ "$status" -ne 0 ]
	run rm -f "$M/stat"
	[ "$status" -ne 0 ]
	run mkdir "$M/sub"
	[ "$status" -ne 0 ]
	[ -f "$M/stat" ]
}

@test "the directory lists the control files and root/" {
	run ls "$M"
	[ "$output" = "$(printf 'cmd\nctl\nexit\nlog\nroot\nstat\nstderr\nstdin\nstdout')" ]
}

@test "log: the machine's log, read-only; a clean ns machine's is empty" {
	run cat "$M/log"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(stat -c %s "$M/log")" = 0 ]
	run bash -c "echo x > '$M/log'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
}

@test "commands run as root with a clean environment" {
	echo 'id -u; echo "$TERM"; echo "$HOME"' > "$M/cmd"
	run cat "$M/stdout"
	[ "${lines[0]}" = 0 ]
	[ "${lines[1]}" = dumb ]
}

@test "root/ shows what a command changed once it ended (caches dropped)" {
	vp_run c 'echo one > /tmp/seen'
	[ "$(cat "$M/root/tmp/seen")" = one ]
	ls -l "$M/root/tmp/seen" > /dev/null
	vp_run c 'echo two-longer > /tmp/seen; mkdir -p /tmp/newdir'
	[ "$(cat "$M/root/tmp/seen")" = two-longer ]
	[ -d "$M/root/tmp/newdir" ]
	vp_run c 'rm -rf /tmp/seen /tmp/newdir'
	# names: the kernel may keep a positive entry for its timeout (1 s)
	wait_for '[ ! -e "$M/root/tmp/seen" ]'
	[ "$(ls "$M/root/tmp" | grep -c seen)" = 0 ]
}

@test "a file copied into root/ is seen by the next command" {
	seq 1 1000 > "$VP_DIR/in"
	cp "$VP_DIR/in" "$M/root/tmp/in"
	echo 'wc -l < /tmp/in' > "$M/cmd"
	[ "$(cat "$M/stdout")" = 1000 ]
}
