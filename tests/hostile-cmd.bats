#!/usr/bin/env bats
# A failed write to cmd poisons that open: the accepted prefix of a script
# cut at the limit (or at a NUL byte) must not run at close, the close
# reports the error again, and the next open works as usual.

load helpers

setup_file() {
	vp_mount
	mkdir "$MNT/pool/c"
}
teardown_file() { vp_unmount; }

M() { echo "$MNT/pool/c"; }

# The marker a half-run script would leave in the guest must not be there.
no_marker() {
	vp_run c 'test -e /tmp/marker && echo yes || echo no'
	[ "$(cat "$(M)/stdout")" = no ]
}

@test "a script cut by E2BIG runs nothing; close reports it; the next command runs" {
	local m
	m=$(M)
	# the first line is accepted (its own write), then the text passes the
	# 128 KiB limit; the shell that opened cmd closes it at the end
	run bash -c "{ echo 'touch /tmp/marker'; head -c 140000 /dev/zero | tr '\\0' '#'; } > '$m/cmd'"
	[ "$status" -ne 0 ]
	[[ $output == *"Argument list too long"* ]]
	sleep 0.3 # a release-time start would come now
	[ "$(kv "$m/stat" state)" != running ]
	[ "$(kv "$m/stat" cmd)" != "touch /tmp/marker" ]
	no_marker
	grep -q "c: cmd: a write failed (Argument list too long): nothing of this open runs" "$VP_DIR/log"
	echo 'echo next' > "$m/cmd"
	[ "$(cat "$m/exit")" = 0 ]
	[ "$(cat "$m/stdout")" = next ]
}

@test "the close of a poisoned open fails even when the failing write's error is ignored" {
	local m
	m=$(M)
	# python: one write accepted, one refused (error caught), then close
	run python3 - "$m/cmd" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"touch /tmp/marker\n")
try:
    os.write(fd, b"#" * 140000)
    print("write ok")
except OSError as e:
    print("write", e.errno)
try:
    os.write(fd, b"echo more\n")
    print("write2 ok")
except OSError as e:
    print("write2", e.errno)
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close", e.errno)
EOF
	[ "$status" -eq 0 ]
	[[ $output == *"write 7"* ]]   # E2BIG
	[[ $output == *"write2 7"* ]]  # still poisoned
	[[ $output == *"close 7"* ]]
	sleep 0.3
	no_marker
}

@test "a NUL byte (EINVAL) poisons the open likewise" {
	local m
	m=$(M)
	run python3 - "$m/cmd" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"touch /tmp/marker\n")
try:
    os.write(fd, b"echo a\0b\n")
    print("write ok")
except OSError as e:
    print("write", e.errno)
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close", e.errno)
EOF
	[ "$status" -eq 0 ]
	[[ $output == *"write 22"* ]]
	[[ $output == *"close 22"* ]]
	run bash -c "printf 'touch /tmp/marker\necho a\\0b' > '$m/cmd'"
	[ "$status" -ne 0 ]
	[[ $output == *"Invalid argument"* ]]
	sleep 0.3
	no_marker
	echo 'echo after' > "$m/cmd"
	[ "$(cat "$m/exit")" = 0 ]
	[ "$(cat "$m/stdout")" = after ]
}
