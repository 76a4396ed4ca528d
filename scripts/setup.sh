#!/usr/bin/env bash
# Installs what vmpoolfs needs on Debian 12 (as root) and builds it into
# build/ (and, with --sanitize, build-asan/). Idempotent and quick when
# everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential pkg-config meson ninja-build libfuse3-dev fuse3
	debhelper lintian mmdebstrap python3-kubernetes python3-yaml rsync
	busybox-static cpio gzip bats inotify-tools clang clang-19 sshfs openssh-sftp-server
	procps psmisc util-linux musl-tools clang-format
	systemd groff-base man-db file python3 # tests/system/service.bats: verify, man pages, listeners
	bubblewrap
	runc
	umoci)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
	echo "setup: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# apt-cache needs package lists to resolve the guest kernel package.
# apt keeps its lists compressed (*_Packages.lz4 on Debian 12): any form
# counts, so a set-up machine needs no network to build and test.
[ -n "$(ls /var/lib/apt/lists/*_Packages* 2>/dev/null | head -n1)" ] || apt-get update -qq

export VMPOOL_DEB_CACHE=${VMPOOL_DEB_CACHE:-$PWD/.cache/debs}
build() { # build DIR [meson options...]
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	elif [ $# -gt 0 ]; then
		# Given again because meson drops a kept value whose option changed
		# type: a build-asan made when sanitize was a boolean came back
		# unsanitized once it became a combo. Cheap when nothing changes.
		meson configure "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
}
build build
if [ "${1:-}" = "--sanitize" ]; then
	build build-asan -Dsanitize=address
fi
