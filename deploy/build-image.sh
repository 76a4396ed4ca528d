#!/usr/bin/env bash
# Builds the container image of the daemon from the .deb with Debian's
# tools only (no registry: mmdebstrap fetches from Debian's mirror) and
# imports it: build-image.sh VMPOOLFS.deb [NAME] (default
# localhost/vmpoolfs:VERSION), with podman or docker, whichever is there.
set -euo pipefail
deb=$(realpath "$1")
ver=$(dpkg-deb -f "$deb" Version)
name=${2:-localhost/vmpoolfs:${ver%-*}}
tar=$(mktemp /var/tmp/vmpoolfs-image.XXXXXX.tar)
trap 'rm -f "$tar"' EXIT
mmdebstrap --variant=minbase --include="$deb" bookworm "$tar"
tool=$(command -v podman || command -v docker)
"$tool" import --change 'CMD ["/usr/bin/vmpoolfs", "--help"]' "$tar" "$name"
