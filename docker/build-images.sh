#!/usr/bin/env bash
# Build the images offline, reusing what exists: each is tagged by the hash of what goes into
# it (and :latest), so a fresh clone with the same content reuses it.
#   docker/build-images.sh          -> social-tone/task (the demo and the tests)
#   docker/build-images.sh --team   -> + airflow, triton-cpu, postgres, redis, docker-proxy
#                                      (docker-compose.yaml)
#   docker/build-images.sh --tensorrt -> + social-tone/tensorrt (a GPU host: TEAM_GPU=1, gpu-smoke),
#                                      on the NGC base TENSORRT_BASE_IMAGE, which must be loaded
# Env: BASE_IMAGE (default: the local debootstrap base, made when missing),
#      TASK_IMAGE (default social-tone/task), PIP_EXTRA_CA (a CA bundle for a TLS-intercepting
#      proxy, used by the host-side `pip wheel`; containers never reach the network).
set -euo pipefail
cd "$(dirname "$0")/.."
TEAM=false; TENSORRT=false
for arg in "$@"; do
  case $arg in --team) TEAM=true ;; --tensorrt) TENSORRT=true ;; *) echo "unknown option $arg" >&2; exit 2 ;; esac
done
TENSORRT_BASE_IMAGE=${TENSORRT_BASE_IMAGE:-nvcr.io/nvidia/tensorrt:24.10-py3}
if $TENSORRT && ! docker image inspect "$TENSORRT_BASE_IMAGE" >/dev/null 2>&1; then
  # checked first: a GPU stack without its converter would only fail at the first retrain
  echo "error: the TensorRT image's base $TENSORRT_BASE_IMAGE is not on this engine, and no registry is used." \
       "Load it (docker save on a machine with nvcr.io access, then: docker load -i tensorrt-24.10.tar) or set" \
       "TENSORRT_BASE_IMAGE." >&2
  exit 3
fi
TASK_IMAGE=${TASK_IMAGE:-social-tone/task}
if [ -z "${BASE_IMAGE:-}" ]; then
  BASE_IMAGE=social-tone/base:bookworm
  docker/make-base-image.sh "$BASE_IMAGE"
fi
CACHE=$HOME/.cache/social-tone

. docker/wheelhouse.sh  # wheelhouse(): the wheels of a requirements file, cached by content
# image name, its hash, Dockerfile, requirements file or "" (-> /wheels), its Python version or
# "" (the host's), build args...
build() {
  local image=$1 hash=$2 dockerfile=$3 req=$4 py=$5; shift 5
  if docker image inspect "$image:$hash" >/dev/null 2>&1; then
    docker tag "$image:$hash" "$image:latest"; echo "$image:$hash exists"; return
  fi
  find docker/wheelhouse -mindepth 1 -not -name .keep -delete 2>/dev/null || true; mkdir -p docker/wheelhouse
  if [ -n "$req" ]; then
    local wheels; wheels=$(wheelhouse "$req" "$py")
    cp -al "$wheels"/*.whl docker/wheelhouse/ 2>/dev/null || cp "$wheels"/*.whl docker/wheelhouse/
    [ -z "${EXTRA_CONTEXT:-}" ] || cp -a "$EXTRA_CONTEXT" docker/wheelhouse/
    cp "$req" "docker/wheelhouse/$(basename "$req" .tmp)"
  fi
  docker build -q -f "$dockerfile" "$@" -t "$image:$hash" -t "$image:latest" . >/dev/null
  find docker/wheelhouse -mindepth 1 -not -name .keep -delete
  echo "built $image:$hash"
}
trap 'rm -f docker/*.txt.tmp' EXIT

# the task image: requirements.txt without the test tools and the Triton server
grep -vE '^(pytest|hypothesis|selenium|ruff|nvidia-pytriton)' requirements.txt > docker/requirements-task.txt.tmp
build "$TASK_IMAGE" "$( (echo "$BASE_IMAGE"; cat requirements.txt docker/Dockerfile.task pyproject.toml;
                         find tasks -name '*.py' -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-12)" \
  docker/Dockerfile.task docker/requirements-task.txt.tmp "" --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if $TENSORRT; then
  build social-tone/tensorrt "$( (echo "$TENSORRT_BASE_IMAGE"; cat docker/requirements-tensorrt.txt docker/Dockerfile.tensorrt \
                                  pyproject.toml; find tasks -name '*.py' -print0 | sort -z | xargs -0 cat) \
                                | sha256sum | cut -c1-12)" \
    docker/Dockerfile.tensorrt docker/requirements-tensorrt.txt 3.10 --build-arg BASE_IMAGE="$TENSORRT_BASE_IMAGE"
fi
$TEAM || exit 0

# Airflow: requirements-airflow.txt without the test tools + Celery/Postgres
{ grep -vE '^(pytest|selenium)' requirements-airflow.txt; cat docker/requirements-airflow-image.txt; } \
  > docker/requirements-airflow.txt.tmp
build social-tone/airflow "$( (echo "$BASE_IMAGE"; cat docker/requirements-airflow.txt.tmp docker/Dockerfile.airflow;
                               find dags include plugins tasks -name '*.py' -print0 | sort -z | xargs -0 cat) \
                             | sha256sum | cut -c1-12)" \
  docker/Dockerfile.airflow docker/requirements-airflow.txt.tmp "" --build-arg BASE_IMAGE="$BASE_IMAGE"
# CPU Triton: the server and the Python backend's ONNX Runtime, pinned in requirements.txt, and
# Triton's C++ onnxruntime backend built against the same ONNX Runtime (the tasks venv's wheel)
grep -E '^(numpy|onnxruntime|nvidia-pytriton|tritonclient)[=\[]' requirements.txt > docker/requirements-triton.txt.tmp
ORT_BACKEND=$(docker/build-ort-backend.sh "${SOCIAL_TONE_VENV:-.venv}")
EXTRA_CONTEXT=$ORT_BACKEND build social-tone/triton-cpu "$( (echo "$BASE_IMAGE"; cat docker/requirements-triton.txt.tmp \
                                  docker/Dockerfile.triton-cpu; ls -a "$ORT_BACKEND";
                                  find tasks -name '*.py' -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-12)" \
  docker/Dockerfile.triton-cpu docker/requirements-triton.txt.tmp "" --build-arg BASE_IMAGE="$BASE_IMAGE"
# Postgres, Redis and the socket proxy: Debian's packages in one debootstrap base
# (haproxy is no longer used: the Docker proxy is docker/services/docker_policy.py; it stays in
# the list until the base changes anyway, so that a cached base keeps being reused)
SERVICES_PKGS=(postgresql-15 redis-server haproxy)
SERVICES=social-tone/services:$( (cat docker/make-base-image.sh; echo "${SERVICES_PKGS[@]}") | sha256sum | cut -c1-12)
docker/make-base-image.sh "$SERVICES" "${SERVICES_PKGS[@]}"
for svc in postgres redis docker-proxy; do
  build "social-tone/$svc" "$( (echo "$SERVICES"; cat "docker/Dockerfile.$svc" docker/services/*) | sha256sum | cut -c1-12)" \
    "docker/Dockerfile.$svc" "" "" --build-arg SERVICES_BASE="$SERVICES"
done
