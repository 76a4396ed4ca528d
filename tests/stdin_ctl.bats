#!/usr/bin/env bats
# pool/NAME/stdin and pool/NAME/ctl (docs/design.md §1).

load helpers

setup_file() {
	vp_mount
	mkdir "$MNT/pool/i"
}
teardown_file() { vp_unmount; }

setup() { M=$MNT/pool/i; }

@test "stdin to cat round trips" {
	echo 'cat' > "$M/cmd"
	printf 'hello\nworld\n' > "$M/stdin"
	[ "$(timeout 10 cat "$M/stdout")" = "$(printf 'hello\nworld')" ]
	[ "$(cat "$M/exit")" = 0 ]
}

@test ": > stdin gives EOF at once" {
	echo 'cat; echo eof' > "$M/cmd"
	: > "$M/stdin"
	[ "$(timeout 10 cat "$M/stdout")" = eof ]
}

@test "several writes before the close reach the command in order" {
	echo 'wc -l' > "$M/cmd"
	{ for i in $(seq 1 100); do echo "line $i"; done; } > "$M/stdin"
	[ "$(timeout 10 cat "$M/stdout" | tr -d ' ')" = 100 ]
}

@test "a large stdin (5 MB) arrives whole" {
	head -c 5000000 /dev/urandom > "$VP_DIR/in"
	echo 'md5sum' > "$M/cmd"
	timeout 30 cat "$VP_DIR/in" > "$M/stdin"
	[ "$(timeout 10 cat "$M/stdout" | cut -d' ' -f1)" = "$(md5sum < "$VP_DIR/in" | cut -d' ' -f1)" ]
	rm -f "$VP_DIR/in"
}

@test "writing stdin with no command running fails with EPIPE" {
	echo 'true' > "$M/cmd"
	cat "$M/exit" >/dev/null
	run bash -c "echo x > '$M/stdin'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Broken pipe"* ]]
}

@test "stdin cannot be read" {
	run cat "$M/stdin"
	[ "$status" -ne 0 ]
}

@test "ctl kill sends TERM by default" {
	vp_ctl_kill "$M" 'sleep 30' '' 143
	[ "$(kv "$M/stat" signal)" = 15 ]
}

@test "ctl kill takes a name or a number" {
	vp_ctl_kill "$M" 'sleep 30' INT 130
	vp_ctl_kill "$M" 'sleep 30' 9 137
	vp_ctl_kill "$M" 'sleep 30' SIGKILL 137
}

@test "ctl kill reaches the whole process tree" {
	vp_ctl_kill "$M" 'sleep 30 & sleep 30 & wait' KILL 137
	echo 'ps -o comm 2>/dev/null | grep -c "^sleep" || true' > "$M/cmd"
	[ "$(cat "$M/stdout")" = 0 ]
}

@test "ctl kill with nothing running fails (ESRCH)" {
	run bash -c "echo kill > '$M/ctl'"
	[ "$status" -ne 0 ]
}

@test "ctl timeout applies to the next commands" {
	echo 'timeout 1' > "$M/ctl"
	grep -qx 'timeout=1' "$M/ctl"
	echo 'sleep 20' > "$M/cmd"
	[ "$(timeout 15 cat "$M/exit")" = 124 ]
	echo 'sleep 20' > "$M/cmd"
	[ "$(timeout 15 cat "$M/exit")" = 124 ]
	echo 'timeout 0' > "$M/ctl"
	echo 'sleep 1.5; echo ok' > "$M/cmd"
	[ "$(timeout 15 cat "$M/stdout")" = ok ]
}

@test "ctl env adds variables to the next commands" {
	echo 'env GREETING=hello world' > "$M/ctl"
	echo 'env N=1' > "$M/ctl"
	echo 'env N=2' > "$M/ctl"
	echo 'echo "$GREETING/$N"' > "$M/cmd"
	[ "$(cat "$M/stdout")" = "hello world/2" ]
	grep -qx 'env=GREETING=hello world' "$M/ctl"
}

@test "ctl cwd sets the working directory" {
	echo 'cwd /tmp' > "$M/ctl"
	echo 'pwd' > "$M/cmd"
	[ "$(cat "$M/stdout")" = /tmp ]
	grep -qx 'cwd=/tmp' "$M/ctl"
	echo 'cwd /' > "$M/ctl"
}

@test "several ctl words in one write" {
	printf 'env A=1\nenv B=2\n' > "$M/ctl"
	echo 'echo $A$B' > "$M/cmd"
	[ "$(cat "$M/stdout")" = 12 ]
}

@test "a bad ctl word or value fails with EINVAL" {
	for w in 'bogus' 'kill NOSUCHSIG' 'timeout abc' 'timeout -1' 'env =x' 'env NOEQUALS' 'cwd relative'; do
		run bash -c "echo '$w' > '$M/ctl'"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Invalid argument"* ]]
	done
}

@test "reading ctl shows the settings" {
	run cat "$M/ctl"
	[ "${lines[0]}" = "timeout=0" ]
	[ "${lines[1]}" = "cwd=/" ]
}
