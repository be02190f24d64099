#!/usr/bin/env bash
# Make the base image the Dockerfiles name (python:3.11-slim-bookworm) from Debian's own
# packages, for machines that reach Debian's archive but no container registry:
# debootstrap a minimal bookworm with Python 3.11, then `docker import` it under that tag.
# It stands in for the official image: Python 3.11 as python3, no compiler, no libgomp, no
# manuals or translations.
#   tests/images/standin_base.sh [TAG]     (root; needs debootstrap and a docker engine)
# Kept once made: nothing is done when the tag already exists.
set -euo pipefail
tag=${1:-python:3.11-slim-bookworm}
docker=${DOCKER:-docker}
if "$docker" image inspect "$tag" >/dev/null 2>&1; then
  echo "==> $tag is there"; exit 0
fi
work=$(mktemp -d /var/tmp/tinyllm-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "==> debootstrap bookworm into $work (about 2 minutes)"
nice -n 15 debootstrap --variant=minbase \
  --include=python3,python3-venv,ca-certificates,netbase,tzdata \
  bookworm "$work/rootfs" >"$work/log" 2>&1 || { tail -20 "$work/log"; exit 1; }
# Slim as Debian's slim images are: no manuals, info pages or translations, docs but licences.
root=$work/rootfs
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
find "$root/usr/share/doc" -type f ! -name copyright -delete
echo "==> docker import as $tag"
tar -C "$root" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' - "$tag" >/dev/null
"$docker" image ls "$tag"
