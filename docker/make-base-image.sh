#!/usr/bin/env bash
# Make a local Debian bookworm base image without any container registry:
# debootstrap --variant=minbase + python3 (+ any extra Debian packages), then `docker import`.
# ~90 s, ~190 MB.
# Usage: docker/make-base-image.sh [tag] [extra Debian package ...]
#   docker/make-base-image.sh                                   -> social-tone/base:bookworm
#   docker/make-base-image.sh social-tone/services:X postgresql redis-server haproxy
# Skips the work when the tag already exists. Normal users with a registry can instead pass
# --build-arg BASE_IMAGE=python:3.11-slim-bookworm.
set -euo pipefail
TAG=${1:-social-tone/base:bookworm}
shift || true
if docker image inspect "$TAG" >/dev/null 2>&1; then echo "$TAG exists"; exit 0; fi
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
command -v debootstrap >/dev/null || { sudo_ apt-get update -qq; DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq debootstrap >/dev/null; }
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d /tmp/social-tone-rootfs.XXXXXX)
trap 'sudo_ rm -rf "$ROOT"' EXIT
INCLUDE=python3,python3-venv,ca-certificates,libpython3.11
for p in "$@"; do INCLUDE+=",$p"; done
sudo_ debootstrap --variant=minbase --include="$INCLUDE" bookworm "$ROOT" "$MIRROR" >/dev/null
sudo_ rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
sudo_ tar -C "$ROOT" -c . | docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
echo "built $TAG"
