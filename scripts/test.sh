#!/usr/bin/env bash
# Sets up, builds (plain and ASan+UBSan) and runs every test: the unit and
# integration tests (meson test) in both builds, every fuzz target for a
# bounded time, and the bats suites on a real mount of each build's
# daemon (whole-system suites in tests/system once, on the plain one); then
# a TSan build (build-tsan: unit tests and stress.bats) and a
# clang-19 -Wthread-safety compile of the tree (build-clang). Ends with the line
# "N passed, N failed, N skipped" and a non-zero status if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/setup.sh --sanitize || { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0
failures=()
# Each stage's wall time, printed at the end: the suite must stay well
# inside CI's budget, and this says where the minutes go.
timings=() stage_name="" stage_start=$SECONDS
stage() { # stage NAME: closes the previous stage's timer, prints the header
	[ -z "$stage_name" ] || timings+=("$(printf '%5ds  %s' $((SECONDS - stage_start)) "$stage_name")")
	stage_name=$1 stage_start=$SECONDS
	[ -z "$1" ] || echo "== $1"
}
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
	stage "meson test ($b)"
	rm -f "$b/meson-logs/testlog.json"
	meson test -C "$b" --print-errorlogs --num-processes 1
	count_meson "$b" "$b"
done

# Two builds need no test to finish first, so they run in the background,
# one job each (ninja -j1), while the single-threaded fuzzers and the bats
# suites leave the second core mostly idle:
# - build-tsan, for the TSan stage below;
# - build-clang: every C file compiled with clang-19 -Wthread-safety
#   -Wthread-safety-beta -Werror, so a lock annotated with
#   lib/thread_safety.h that is taken without release, or a REQUIRES
#   function called without its lock, fails. Objects only: linking and the
#   image add nothing to it.
export VMPOOL_DEB_CACHE=${VMPOOL_DEB_CACHE:-$root/.cache/debs} # as setup.sh: one download for every build
bg_logs=$(mktemp -d)
(
	{ [ -f build-tsan/build.ninja ] || meson setup build-tsan -Dsanitize=thread; } &&
		ninja -j1 -C build-tsan
) >"$bg_logs/tsan.log" 2>&1 &
tsan_build_pid=$!
(
	# A build-clang set up by an older script used clang 14: start it afresh.
	[ ! -f build-clang/build.ninja ] || grep -q 'clang-19' build-clang/build.ninja || rm -rf build-clang
	{ [ -f build-clang/build.ninja ] ||
		CC=clang-19 meson setup build-clang -Dc_args='-Wthread-safety -Wthread-safety-beta'; } &&
		mapfile -t objs < <(ninja -C build-clang -t targets rule c_COMPILER) &&
		ninja -j1 -C build-clang "${objs[@]}"
) >"$bg_logs/clang.log" 2>&1 &
clang_build_pid=$!

# Each fuzz target runs briefly from its seed corpus (copied, so the
# corpus in the tree does not grow) and counts as one pass or fail. The
# frame decoder gets longer: it is the parser every guest reaches first.
# The client against a hostile agent is slower per input (each runs a
# client and waits out timeouts), hence its longer per-input limit.
# Entries: name, binary under build-fuzz, seed folder, seconds, per-input
# timeout.
fuzz_targets=(
	"fuzz_frame tests/proto/fuzz_frame tests/proto/corpus 20 5"
	"fuzz_client tests/client/fuzz_client tests/client/corpus 10 30"
	"fuzz_snapfile tests/fuzz/fuzz_snapfile tests/fuzz/corpus/snapfile 10 5"
	"fuzz_bzimage tests/fuzz/fuzz_bzimage tests/fuzz/corpus/bzimage 10 5"
	"fuzz_virtq tests/fuzz/fuzz_virtq tests/fuzz/corpus/virtq 10 5"
	"fuzz_ctlparse tests/fuzz/fuzz_ctlparse tests/fuzz/corpus/ctlparse 10 5"
)
fuzz_built=0
if [ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dsanitize=address >/dev/null; then
	fuzz_built=1
fi
for t in "${fuzz_targets[@]}"; do
	read -r name bin seeds secs tmo <<<"$t"
	stage "fuzz: $name ($secs s)"
	fuzz_ok=0
	if [ $fuzz_built = 1 ] && ninja -C build-fuzz "$bin" >/dev/null; then
		corpus=$(mktemp -d)
		cp "$seeds"/* "$corpus"/ 2>/dev/null || true
		# -artifact_prefix keeps a crashing input out of the source tree
		# (libFuzzer writes it to the current directory otherwise).
		build-fuzz/"$bin" -max_total_time="$secs" -timeout="$tmo" -rss_limit_mb=2048 \
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
count_bats() { # count_bats LABEL SUITE...: runs bats (under ${run_prefix[@]}), counts its TAP
	local label=$1 tap bats_rc p s f l
	shift
	tap=$(mktemp)
	"${run_prefix[@]}" bats --tap "$@" 2>&1 | tee "$tap"
	bats_rc=${PIPESTATUS[0]}
	p=$(grep -cE '^ok [0-9]+' "$tap" | head -n1)
	s=$(grep -cE '^ok [0-9]+ .*# skip' "$tap" | head -n1)
	f=$(grep -cE '^not ok [0-9]+' "$tap" | head -n1)
	passed=$((passed + p - s)); skipped=$((skipped + s)); failed=$((failed + f))
	while read -r l; do failures+=("bats ($label): $l"); done < <(grep -E '^not ok [0-9]+' "$tap")
	if [ "$bats_rc" != 0 ] && [ "$f" = 0 ]; then failed=$((failed + 1)); failures+=("bats ($label) exited $bats_rc"); fi
	rm -f "$tap"
}
run_prefix=(env)
for b in build build-asan; do
	stage "bats ($b)"
	export VMPOOLFS=$root/$b/fs/vmpoolfs VMPOOL_IMAGE=$root/$b/image BUILD=$root/$b
	export RP_HARNESS=$root/$b/tests/fs/rp_harness
	[ -e "${suites[0]}" ] || break
	count_bats "$b" "${suites[@]}"
	if [ "$b" = build ]; then
		# Whole-system suites (image builds, install, packaging, service)
		# run once, on the plain build: they test what is installed and
		# built around the daemon, not its memory safety.
		stage "bats system ($b)"
		system_suites=(tests/system/*.bats)
		[ ! -e "${system_suites[0]}" ] || count_bats "$b system" "${system_suites[@]}"
	fi
done

# ThreadSanitizer (about 1.5 min): the unit tests and the stress suite,
# whose many users at once reach most locks of the daemon; the other suites
# are mostly one user at a time and already run twice above. A report
# fails a unit test (TSan exits 66) and the stress test (vp_exited_clean).
# tests/tsan.supp holds what is not ours to fix, each entry with its why.
stage "TSan (build-tsan): meson test, stress.bats"
tsan_ok=0
if wait "$tsan_build_pid"; then
	tsan_ok=1
else
	failed=$((failed + 1)); failures+=("build-tsan: build failed")
	tail -n 30 "$bg_logs/tsan.log"
fi
if [ $tsan_ok = 1 ]; then
	# TSan maps its shadow memory at fixed addresses; with a high
	# vm.mmap_rnd_bits it can die with "unexpected memory mapping". Without
	# address randomisation (setarch -R, inherited by children) it fits.
	run_prefix=(env "TSAN_OPTIONS=suppressions=$root/tests/tsan.supp second_deadlock_stack=1 ${TSAN_OPTIONS:-}")
	"${run_prefix[@]}" build-tsan/fs/vmpoolfs --version >/dev/null 2>&1 ||
		run_prefix=(setarch "$(uname -m)" -R "${run_prefix[@]}")
	rm -f build-tsan/meson-logs/testlog.json
	"${run_prefix[@]}" meson test -C build-tsan --print-errorlogs --num-processes 1
	count_meson build-tsan build-tsan
	export VMPOOLFS=$root/build-tsan/fs/vmpoolfs VMPOOL_IMAGE=$root/build-tsan/image BUILD=$root/build-tsan
	export RP_HARNESS=$root/build-tsan/tests/fs/rp_harness
	count_bats build-tsan tests/stress.bats
	run_prefix=(env)
fi

stage "format (.clang-format)"
# The tree is formatted by .clang-format (clang-format 14, Debian 12's);
# scripts/format-check.sh lists any file that drifted.
if scripts/format-check.sh; then
	passed=$((passed + 1))
else
	failed=$((failed + 1)); failures+=("format-check: run git ls-files '*.c' '*.h' | xargs clang-format -i")
fi

stage "clang -Wthread-safety (build-clang)"
if wait "$clang_build_pid"; then
	passed=$((passed + 1))
else
	failed=$((failed + 1)); failures+=("build-clang: -Wthread-safety compile")
	tail -n 30 "$bg_logs/clang.log"
fi
rm -rf "$bg_logs"

stage ""
echo
printf '%s\n' "${timings[@]}"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
