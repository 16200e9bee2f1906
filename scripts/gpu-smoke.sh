#!/usr/bin/env bash
# `make gpu-smoke`: the production serving path on one GPU, end to end, in under 10 minutes.
#   convert (FP32 and FP16, parity vs ONNX Runtime) -> publish as tensorrt_plan (both) and as
#   onnxruntime on KIND_GPU -> load in the NGC Triton (24.10) -> infer -> score a day ->
#   hot reload of a second version with the canary at each version's own tolerance.
# Needs: one NVIDIA GPU with its driver, the NVIDIA container toolkit (`docker run --gpus`),
# the two NGC 24.10 images (tensorrt, tritonserver) docker-loaded; it builds the task and
# TensorRT images itself (docker/build-images.sh --tensorrt).
# Exit 0: every step passed; 5: skipped, no GPU here; anything else: the step that failed is
# printed. Everything it starts listens on 127.0.0.1 and is removed at exit; results go to
# $WORK/gpu-smoke.json (printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "skipped: no GPU (nvidia-smi finds no device). Run on a host with an NVIDIA GPU, its driver and the" \
       "NVIDIA container toolkit."
  exit 5
fi
TASK_IMAGE=${SOCIAL_TONE_TASK_IMAGE:-social-tone/task:latest}
TRT_IMAGE=${SOCIAL_TONE_TENSORRT_IMAGE:-social-tone/tensorrt:latest}
TRITON_IMAGE=${SOCIAL_TONE_TRITON_GPU_IMAGE:-nvcr.io/nvidia/tritonserver:24.10-py3}
GRPC_PORT=${GPU_SMOKE_GRPC_PORT:-18001}; HTTP_PORT=${GPU_SMOKE_HTTP_PORT:-18000}
WORK=$(mktemp -d /tmp/social-tone-gpu-smoke.XXXXXX)
# Triton's model-repository API closed, as in compose; only the reload steps get the secret
SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
TRITON=social-tone-gpu-smoke-$$
T0=$(date +%s)
trap 'docker rm -f "$TRITON" >/dev/null 2>&1 || true' EXIT

step() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }
task() {  # image, command... : one `python3 -m tasks` step, as the DAG's factory would run it
  local image=$1; shift
  local gpu=(); [ "$image" = "$TRT_IMAGE" ] && gpu=(--gpus all)
  docker run --rm "${gpu[@]}" --network host -u "$(id -u):$(id -g)" -e HOME=/tmp -e MLFLOW_TRACKING_URI=none \
    -e SOCIAL_TONE_TRITON_ADMIN_SECRET -v "$WORK:$WORK" "$image" python3 -m tasks "$@"
}

step "images"
docker image inspect "$TRITON_IMAGE" >/dev/null 2>&1 || {
  echo "error: $TRITON_IMAGE is not on this engine (no registry is used): docker load it first" >&2; exit 3; }
# both images rebuilt when tasks/ changed since (tagged by content), reused otherwise
docker/build-images.sh --tensorrt
docker run --rm --gpus all "$TRT_IMAGE" nvidia-smi -L

step "a synthetic drop, a short training run, ONNX export (CPU task image)"
task "$TASK_IMAGE" synth --out "$WORK/d" --rows 20000 >/dev/null
task "$TASK_IMAGE" synth --kind scoring --out "$WORK/days" --rows 20000 --days 1 --start 2026-01-01 >/dev/null
for run in run run2; do  # two runs with different seeds: two different models
  seed=$([ "$run" = run ] && echo 1 || echo 2)
  task "$TASK_IMAGE" train --data "$WORK/d" --out "$WORK/$run" --epochs 3 --seed "$seed" --tracking-uri none >/dev/null
  task "$TASK_IMAGE" export-onnx --model-dir "$WORK/$run" --tracking-uri none >/dev/null
done
cp -r "$WORK/run" "$WORK/run16"

step "TensorRT plans: FP32 and FP16, parity vs ONNX Runtime on 1000 real rows"
task "$TRT_IMAGE" convert-tensorrt --model-dir "$WORK/run" | tail -1
task "$TRT_IMAGE" convert-tensorrt --model-dir "$WORK/run16" --fp16 | tail -1
task "$TRT_IMAGE" convert-tensorrt --model-dir "$WORK/run2" | tail -1

step "publish: tensorrt_plan (fp32, fp16) and onnxruntime on KIND_GPU"
task "$TASK_IMAGE" publish --model-dir "$WORK/run" --repo "$WORK/repo" --model st_trt --backend tensorrt_plan | tail -1
task "$TASK_IMAGE" publish --model-dir "$WORK/run16" --repo "$WORK/repo" --model st_trt16 --backend tensorrt_plan | tail -1
task "$TASK_IMAGE" publish --model-dir "$WORK/run" --repo "$WORK/repo" --model st_ort --backend onnxruntime --gpu | tail -1

step "NGC Triton on 127.0.0.1:$GRPC_PORT"
docker run -d --name "$TRITON" --gpus all --network host -v "$WORK/repo:$WORK/repo:ro" "$TRITON_IMAGE" \
  tritonserver --model-repository="$WORK/repo" --model-control-mode=explicit --allow-metrics=false \
  --grpc-address=127.0.0.1 --grpc-port="$GRPC_PORT" --http-address=127.0.0.1 --http-port="$HTTP_PORT" \
  "--grpc-restricted-protocol=model-repository,shared-memory,trace,logging:social-tone-admin=$SECRET" \
  "--http-restricted-api=model-repository,shared-memory,trace,logging:social-tone-admin=$SECRET" >/dev/null
for _ in $(seq 120); do
  curl -sf "127.0.0.1:$HTTP_PORT/v2/health/live" >/dev/null && break; sleep 1
done
curl -sf "127.0.0.1:$HTTP_PORT/v2/health/live" >/dev/null || { docker logs "$TRITON" | tail -30; exit 1; }

step "load + canary at each version's tolerance, then score a day through each backend"
declare -A RUN=([st_trt]=run [st_trt16]=run16 [st_ort]=run)
export SOCIAL_TONE_TRITON_ADMIN_SECRET=$SECRET  # passed (by name) to the task containers below
for model in st_trt st_trt16 st_ort; do
  task "$TASK_IMAGE" reload --model-dir "$WORK/${RUN[$model]}" --repo "$WORK/repo" --model "$model" \
    --url "127.0.0.1:$GRPC_PORT" | tail -1
  task "$TASK_IMAGE" score "$WORK/days/2026-01-01" --out "$WORK/pred-$model.parquet" --url "127.0.0.1:$GRPC_PORT" \
    --repo "$WORK/repo" --model "$model" | tail -1
done
task "$TASK_IMAGE" score "$WORK/days/2026-01-01" --out "$WORK/pred-cpu.parquet" --onnx-dir "$WORK/run" | tail -1

step "hot reload: version 2 of st_trt (another run's plan) replaces version 1"
task "$TASK_IMAGE" publish --model-dir "$WORK/run2" --repo "$WORK/repo" --model st_trt --backend tensorrt_plan | tail -1
task "$TASK_IMAGE" reload --model-dir "$WORK/run2" --repo "$WORK/repo" --model st_trt --url "127.0.0.1:$GRPC_PORT" \
  --expect-version 2 | tail -1

step "agreement with in-process ONNX Runtime on the CPU"
# -i: without it docker passes no stdin, python3 - reads nothing, exits 0 and nothing is checked
docker run --rm -i -u "$(id -u):$(id -g)" -v "$WORK:$WORK" "$TASK_IMAGE" \
  python3 - "$WORK" "$(( $(date +%s) - T0 ))" st_trt st_trt16 st_ort < scripts/gpu_agreement.py
step "passed: every step of the GPU path (results: $WORK/gpu-smoke.json)"
