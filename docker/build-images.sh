#!/usr/bin/env bash
# Build the task image offline, reusing what exists.
#   docker/build-images.sh            -> social-tone/task:<content hash> and :latest
# Env: BASE_IMAGE (default: the local debootstrap base, made when missing),
#      TASK_IMAGE (default social-tone/task), PIP_EXTRA_CA (a CA bundle for a TLS-intercepting
#      proxy, used by the host-side `pip wheel`; containers never reach the network).
set -euo pipefail
cd "$(dirname "$0")/.."
TASK_IMAGE=${TASK_IMAGE:-social-tone/task}
if [ -z "${BASE_IMAGE:-}" ]; then
  BASE_IMAGE=social-tone/base:bookworm
  docker/make-base-image.sh "$BASE_IMAGE"
fi
# what goes into the image decides its tag: a fresh clone with the same content reuses it
HASH=$( (echo "$BASE_IMAGE"; cat requirements.txt docker/Dockerfile.task pyproject.toml;
         find tasks -name '*.py' -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-12)
if docker image inspect "$TASK_IMAGE:$HASH" >/dev/null 2>&1; then
  docker tag "$TASK_IMAGE:$HASH" "$TASK_IMAGE:latest"
  echo "$TASK_IMAGE:$HASH exists"; exit 0
fi
# Host-side wheelhouse, cached by the image's requirements (test-only tools left out, so adding
# one reuses the wheelhouse and Docker's layer cache): pip inside `docker build` would meet the
# proxy; `pip wheel` also turns sdist-only dependencies into wheels the image can install.
grep -vE '^(pytest|hypothesis|selenium|ruff|nvidia-pytriton)' requirements.txt > docker/requirements-task.txt.tmp
REQ_HASH=$(grep -v '^#' docker/requirements-task.txt.tmp | sha256sum | cut -c1-12)
WHEELS=${WHEELHOUSE:-$HOME/.cache/social-tone/wheelhouse-$REQ_HASH}
if [ ! -f "$WHEELS/.complete" ]; then
  mkdir -p "$WHEELS"
  # (this machine's pip config names an unused extra index: one harmless warning per package)
  python3 -m pip wheel -q ${PIP_EXTRA_CA:+--cert "$PIP_EXTRA_CA"} -w "$WHEELS" -r docker/requirements-task.txt.tmp \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  touch "$WHEELS/.complete"
fi
find docker/wheelhouse -name "*.whl" -delete 2>/dev/null; mkdir -p docker/wheelhouse
cp -al "$WHEELS"/*.whl docker/wheelhouse/ 2>/dev/null || cp "$WHEELS"/*.whl docker/wheelhouse/
mv docker/requirements-task.txt.tmp docker/wheelhouse/requirements-task.txt
docker build -q -f docker/Dockerfile.task --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -t "$TASK_IMAGE:$HASH" -t "$TASK_IMAGE:latest" .
find docker/wheelhouse -name "*.whl" -delete; rm -f docker/wheelhouse/requirements-task.txt
echo "built $TASK_IMAGE:$HASH"
