#!/usr/bin/env bash
# Sets up, builds (plain and ASan+UBSan) and runs every test: the unit and
# integration tests (meson test) in both builds, the frame-decoder fuzzer for
# a bounded time, and the bats suites on a real mount of each build's
# daemon. Ends with the line
# "N passed, N failed, N skipped" and a non-zero status if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/setup.sh --sanitize || { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0
failures=()
count_meson() { # count_meson BUILDDIR LABEL
	local log=$1/meson-logs/testlog.json line res name
	[ -f "$log" ] || { failed=$((failed + 1)); failures+=("$2: no test log"); return; }
	while IFS=$'\t' read -r res name; do
		case $res in
		OK | EXPECTEDFAIL) passed=$((passed + 1)) ;;
		SKIP) skipped=$((skipped + 1)) ;;
		*) failed=$((failed + 1)); failures+=("$2: $name ($res)") ;;
		esac
	done < <(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    t = json.loads(l); print(t["result"] + "\t" + t["name"])' "$log")
}

for b in build build-asan; do
	echo "== meson test ($b)"
	rm -f "$b/meson-logs/testlog.json"
	meson test -C "$b" --print-errorlogs --num-processes 1
	count_meson "$b" "$b"
done

echo "== fuzz: frame decoder (20 s)"
fuzz_ok=0
if [ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dsanitize=true >/dev/null; then
	if ninja -C build-fuzz tests/proto/fuzz_frame >/dev/null; then
		corpus=$(mktemp -d)
		cp tests/proto/corpus/* "$corpus"/ 2>/dev/null || true
		build-fuzz/tests/proto/fuzz_frame -max_total_time=20 -timeout=5 -rss_limit_mb=2048 \
			-print_final_stats=1 "$corpus" 2>&1 | tail -n 5 && fuzz_ok=1
		rm -rf "$corpus"
	fi
fi
if [ $fuzz_ok = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("fuzz_frame"); fi

# The suites run twice: on the plain daemon, then on the ASan+UBSan one
# (vp_exited_clean fails a test whose daemon log holds a sanitizer report,
# leaks at exit included).
suites=(tests/*.bats)
for b in build build-asan; do
	echo "== bats ($b)"
	export VMPOOLFS=$root/$b/fs/vmpoolfs VMPOOL_IMAGE=$root/$b/image BUILD=$root/$b
	export RP_HARNESS=$root/$b/tests/fs/rp_harness
	[ -e "${suites[0]}" ] || break
	tap=$(mktemp)
	bats --tap "${suites[@]}" 2>&1 | tee "$tap"
	bats_rc=${PIPESTATUS[0]}
	p=$(grep -cE '^ok [0-9]+' "$tap" | head -n1)
	s=$(grep -cE '^ok [0-9]+ .*# skip' "$tap" | head -n1)
	f=$(grep -cE '^not ok [0-9]+' "$tap" | head -n1)
	passed=$((passed + p - s)); skipped=$((skipped + s)); failed=$((failed + f))
	while read -r l; do failures+=("bats ($b): $l"); done < <(grep -E '^not ok [0-9]+' "$tap")
	if [ "$bats_rc" != 0 ] && [ "$f" = 0 ]; then failed=$((failed + 1)); failures+=("bats ($b) exited $bats_rc"); fi
	rm -f "$tap"
done

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
