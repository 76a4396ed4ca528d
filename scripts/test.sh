#!/usr/bin/env bash
# Sets up, builds (plain and ASan+UBSan) and runs every test: the unit and
# integration tests (meson test) in both builds, every fuzz target for a
# bounded time, and the bats suites on a real mount of each build's
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

# Each fuzz target runs briefly from its seed corpus (copied, so the
# corpus in the tree does not grow) and counts as one pass or fail. The
# frame decoder gets longer: it is the parser every guest reaches first.
# Entries: name, binary under build-fuzz, seed folder, seconds.
fuzz_targets=(
	"fuzz_frame tests/proto/fuzz_frame tests/proto/corpus 20"
	"fuzz_snapfile tests/fuzz/fuzz_snapfile tests/fuzz/corpus/snapfile 10"
	"fuzz_bzimage tests/fuzz/fuzz_bzimage tests/fuzz/corpus/bzimage 10"
	"fuzz_virtq tests/fuzz/fuzz_virtq tests/fuzz/corpus/virtq 10"
	"fuzz_ctlparse tests/fuzz/fuzz_ctlparse tests/fuzz/corpus/ctlparse 10"
)
fuzz_built=0
if [ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dsanitize=true >/dev/null; then
	fuzz_built=1
fi
for t in "${fuzz_targets[@]}"; do
	read -r name bin seeds secs <<<"$t"
	echo "== fuzz: $name ($secs s)"
	fuzz_ok=0
	if [ $fuzz_built = 1 ] && ninja -C build-fuzz "$bin" >/dev/null; then
		corpus=$(mktemp -d)
		cp "$seeds"/* "$corpus"/ 2>/dev/null || true
		# -artifact_prefix keeps a crashing input out of the source tree
		# (libFuzzer writes it to the current directory otherwise).
		build-fuzz/"$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix="$corpus/" "$corpus" >"$corpus.log" 2>&1 && fuzz_ok=1
		tail -n 5 "$corpus.log"
		if [ $fuzz_ok = 0 ]; then
			mkdir -p build-fuzz/crashes
			cp "$corpus"/crash-* "$corpus"/leak-* "$corpus"/timeout-* "$corpus"/oom-* build-fuzz/crashes/ 2>/dev/null
			grep -E 'ERROR|invariant|SUMMARY|Test unit written' "$corpus.log" | head -n 10
		fi
		rm -rf "$corpus" "$corpus.log"
	fi
	if [ $fuzz_ok = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
done

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
