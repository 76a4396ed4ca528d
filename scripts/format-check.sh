#!/usr/bin/env bash
# Checks that C sources are formatted as .clang-format says, without
# changing them: lists every file whose formatting differs and exits 1
# (0 when all match, 2 when clang-format is missing). With -v it also
# prints clang-format's warnings (line and column of each difference).
# Arguments: files to check; default, every tracked .c and .h file.
# Assembly (tests/kvm/guest/entry.S) and non-C files are never checked:
# clang-format would treat them as C.
# To reformat: git ls-files '*.c' '*.h' | xargs clang-format -i
set -uo pipefail
cd "$(dirname "$0")/.."

verbose=0
if [ "${1:-}" = -v ]; then
	verbose=1
	shift
fi
command -v clang-format >/dev/null || {
	echo "format-check: clang-format not found (apt-get install clang-format)" >&2
	exit 2
}

if [ $# -gt 0 ]; then
	files=("$@")
else
	mapfile -t files < <(git ls-files -- '*.c' '*.h')
fi

bad=0
for f in "${files[@]}"; do
	case $f in
	*.c | *.h) ;;
	*) continue ;;
	esac
	# --style=file: the .clang-format at the top, found from the file's
	# directory, so the result does not depend on the caller's config.
	if ! out=$(clang-format --style=file --dry-run -Werror "$f" 2>&1); then
		echo "$f"
		[ $verbose = 1 ] && printf '%s\n' "$out"
		bad=$((bad + 1))
	fi
done
if [ $bad -gt 0 ]; then
	echo "format-check: $bad file(s) differ from .clang-format" >&2
	exit 1
fi
