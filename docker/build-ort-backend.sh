#!/usr/bin/env bash
# Triton's C++ onnxruntime backend, built here for the tritonserver that nvidia-pytriton ships
# (2.51.0 = r24.10), against the ONNX Runtime library the venv's onnxruntime wheel already
# carries. Output: <venv>/triton-backends/onnxruntime/ (libtriton_onnxruntime.so and
# libonnxruntime.so.1), where tasks/triton/server.py looks for it. Cached by content: a second
# call with the same inputs only checks a stamp.
#
# Sources, at pinned commits, without a download at build time once cached: first
# ~/.cache/social-tone/sources/, then a folder of git mirrors in <owner>+<name>/repo layout
# ($SOCIAL_TONE_GIT_MIRRORS), then GitHub.
#
#   docker/build-ort-backend.sh <venv>
set -euo pipefail
VENV=$(cd "${1:?usage: $0 <venv>}" && pwd)
OUT="$VENV/triton-backends/onnxruntime"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/social-tone/sources"
MIRRORS=${SOCIAL_TONE_GIT_MIRRORS:-}

# owner/name commit [path] (r24.10 for Triton's four repositories)
SOURCES=(
  "triton-inference-server/onnxruntime_backend 17e5cb23a6fbeb37282eb7079dd0b580cd79530d"
  "triton-inference-server/backend ac03a5d97403dec841ad46d0439e93db12c9268f"
  "triton-inference-server/core bfec7c61dc0939433f64f14e89b1973073eac8ba"
  "triton-inference-server/common 578491fc3944f77d16a6a38e3d7691c485c47ba0"
  # ONNX Runtime 1.19.0's C API header (API 19, what the r24.10 backend is written against),
  # verbatim in the Go binding's repository ("upgrade to onnxruntime 1.19.0"); the ONNX Runtime
  # repository itself is too large to mirror here. The OrtApi table only grows, so the wheel's
  # newer library serves API 19 as it was.
  "yalue/onnxruntime_go 9abc5adfda6e17b667e83331c32254fa55808113 onnxruntime_c_api.h"
)
ORT_HEADER_SHA256=bfdb387ef6f576ccbeb18c63e19fe5854aa0c278a3838027e9f764419e61475e

ORT_LIB=$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | head -1)
[ -n "$ORT_LIB" ] || { echo "build-ort-backend: no onnxruntime/capi/libonnxruntime.so.1.* in $VENV (pip install onnxruntime)" >&2; exit 2; }

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v patchelf >/dev/null || missing+=(patchelf)
[ -e /usr/include/rapidjson/document.h ] || missing+=(rapidjson-dev)
# triton-inference-server/common at r24.10 declares its unit tests' googletest unconditionally
[ -e /usr/src/googletest/CMakeLists.txt ] || missing+=(googletest)
if [ ${#missing[@]} -gt 0 ]; then  # Debian's packages, as start-dockerd.sh installs docker.io
  sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
  echo "build-ort-backend: installing the build tools: ${missing[*]}" >&2
  { sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null; } || {
    echo "build-ort-backend: could not install ${missing[*]}: apt-get install them, or serve through the" \
         "Python backend instead (SOCIAL_TONE_TRITON_BACKEND=python)" >&2; exit 2; }
fi

KEY=$( (cat "$0"; sha256sum "$ORT_LIB" | cut -d' ' -f1; g++ --version | head -1; cmake --version | head -1) | sha256sum | cut -c1-16)
if [ -f "$OUT/.built-$KEY" ]; then echo "$OUT"; exit 0; fi

# <owner/name> <commit> <dest> [path]: the tree (or one path of it) at that commit, from the
# cache, a mirror or GitHub
fetch_tree() {
  local repo=$1 commit=$2 dest=$3 path=${4:-} tar="$CACHE/${1/\//+}-$2${4:+-${4//\//_}}.tar"
  if [ ! -s "$tar" ]; then
    mkdir -p "$CACHE"
    local git_dir="$MIRRORS/${repo/\//+}/repo"
    if [ -n "$MIRRORS" ] && [ -d "$git_dir" ]; then
      git -C "$git_dir" archive --format=tar "$commit" $path > "$tar.tmp"
    else
      local clone; clone=$(mktemp -d)
      git -C "$clone" init -q && git -C "$clone" fetch -q --depth 1 "https://github.com/$repo" "$commit"
      git -C "$clone" archive --format=tar FETCH_HEAD $path > "$tar.tmp"
      rm -rf "$clone"
    fi
    mv "$tar.tmp" "$tar"
  fi
  mkdir -p "$dest" && tar -xf "$tar" -C "$dest"
}

WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
for s in "${SOURCES[@]}"; do
  read -r repo commit path <<< "$s"
  fetch_tree "$repo" "$commit" "$WORK/src/${repo#*/}" "$path"
done
mkdir -p "$WORK/ort/include" "$WORK/ort/lib"
cp "$WORK/src/onnxruntime_go/onnxruntime_c_api.h" "$WORK/ort/include/"
echo "$ORT_HEADER_SHA256  $WORK/ort/include/onnxruntime_c_api.h" | sha256sum -c --quiet -
cp "$ORT_LIB" "$WORK/ort/lib/" && ln -s "$(basename "$ORT_LIB")" "$WORK/ort/lib/libonnxruntime.so"

echo "build-ort-backend: building Triton's onnxruntime backend (r24.10) against $(basename "$ORT_LIB")" >&2
cmake -S "$WORK/src/onnxruntime_backend" -B "$WORK/build" -Wno-dev -DCMAKE_BUILD_TYPE=Release \
  -DTRITON_ENABLE_GPU=OFF -DTRITON_ENABLE_ONNXRUNTIME_TENSORRT=OFF -DTRITON_ENABLE_ONNXRUNTIME_OPENVINO=OFF \
  -DTRITON_ONNXRUNTIME_INCLUDE_PATHS="$WORK/ort/include" -DTRITON_ONNXRUNTIME_LIB_PATHS="$WORK/ort/lib" \
  -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
  -DFETCHCONTENT_SOURCE_DIR_REPO-COMMON="$WORK/src/common" \
  -DFETCHCONTENT_SOURCE_DIR_REPO-CORE="$WORK/src/core" \
  -DFETCHCONTENT_SOURCE_DIR_REPO-BACKEND="$WORK/src/backend" \
  -DFETCHCONTENT_SOURCE_DIR_GOOGLETEST=/usr/src/googletest > "$WORK/cmake.log" 2>&1 \
  || { tail -30 "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" --target triton-onnxruntime-backend -j "$(nproc)" > "$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; exit 1; }

NEW="$OUT.tmp.$$"
rm -rf "$NEW" && mkdir -p "$NEW"
cp "$WORK/build/libtriton_onnxruntime.so" "$NEW/"
# The backend links the stub libtritonserver.so by that name, but the wheel's server carries
# it renamed (libtritonserver-<hash>.so, auditwheel). The TRITONSERVER_* symbols resolve from
# the server process that loads the backend, so the dependency is dropped, not redirected.
patchelf --remove-needed libtritonserver.so "$NEW/libtriton_onnxruntime.so"
# found through the backend's RUNPATH ($ORIGIN) under the library's SONAME
cp "$ORT_LIB" "$NEW/libonnxruntime.so.1"
touch "$NEW/.built-$KEY"
rm -rf "$OUT" && mv "$NEW" "$OUT"
echo "$OUT"
