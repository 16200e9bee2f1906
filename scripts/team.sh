#!/usr/bin/env bash
# The team stack (docker-compose.yaml: CeleryExecutor, Postgres, Redis, workers, MLflow, CPU
# Triton), every image built here, no registry.
#   scripts/team.sh up     # .env + secrets (kept), images, the stack with TEAM_WORKERS workers,
#                          # waits until every service is healthy, prints URLs and credentials
#   scripts/team.sh down   # stops it and removes its containers (volumes stay; TEAM_PURGE=1 too)
#   scripts/team.sh ps     # the services and their health
# Env: TEAM_ENV (.env), TEAM_PROJECT (social-tone), TEAM_WORKERS (2), TEAM_GPU=1 (the NGC
# override docker-compose.gpu.yaml). The stack reads its settings from TEAM_ENV only: the
# shell's SOCIAL_TONE_*/AIRFLOW*/MLFLOW_* variables (e.g. the demo's) are not passed to compose.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=${TEAM_ENV:-.env}
PROJECT=${TEAM_PROJECT:-social-tone}
FILES=(-f docker-compose.yaml); [ "${TEAM_GPU:-0}" = 1 ] && FILES+=(-f docker-compose.gpu.yaml)
compose() { env -i PATH="$PATH" HOME="$HOME" docker-compose --env-file "$ENV_FILE" -p "$PROJECT" "${FILES[@]}" "$@"; }
setting() { sed -n "s/^$1=\([^ #]*\).*/\1/p" "$ENV_FILE" | tail -1; }

health() {  # one line per container: service state health
  local ids; ids=$(compose ps -q) || return 1
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086
  docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} {{.State.ExitCode}}' $ids
}

case ${1:-} in
up)
  t0=$(date +%s)
  if [ "${TEAM_GPU:-0}" = 1 ]; then  # before anything is written or started: the NGC images are loaded by hand
    docker/start-dockerd.sh
    gpu_triton=$(sed -n 's/^ *image: \(nvcr.io\/nvidia\/tritonserver:[^ ]*\)$/\1/p' docker-compose.gpu.yaml)
    docker image inspect "$gpu_triton" >/dev/null 2>&1 || {
      echo "error: TEAM_GPU=1 serves on $gpu_triton, which is not on this engine (no registry is used):" \
           "docker load it first" >&2; exit 3; }
    TEAM_GPU_IMAGES=1  # build-images.sh --tensorrt checks the TensorRT base the same way, before it builds
  fi
  scripts/compose-init.sh "$ENV_FILE"
  docker/start-dockerd.sh
  docker/build-images.sh --team ${TEAM_GPU_IMAGES:+--tensorrt}
  t1=$(date +%s)
  # Debian's docker-compose 1.29 cannot recreate a container on Docker >= 25 (KeyError
  # 'ContainerConfig', docker/compose#11742): a running stack is stopped first (volumes kept)
  if [ -n "$(compose ps -q)" ]; then echo "stopping the running stack first (volumes kept)"; compose down --remove-orphans; fi
  compose up -d --scale airflow-worker="${TEAM_WORKERS:-2}"
  for i in $(seq 300); do
    h=$(health)
    # ready: every long-running service healthy, airflow-init exited 0
    if ! grep -vE '^airflow-init exited - 0$' <<<"$h" | grep -qv ' running healthy '; then break; fi
    if grep -qE '^airflow-init exited - [1-9]' <<<"$h"; then echo "airflow-init failed:" >&2; compose logs --tail 40 airflow-init >&2; exit 1; fi
    [ "$i" = 300 ] && { echo "not healthy after 600 s:" >&2; echo "$h" >&2; compose logs --tail 20 >&2; exit 1; }
    sleep 2
  done
  t2=$(date +%s)
  echo "team stack '$PROJECT' healthy: images $((t1 - t0)) s, start to healthy $((t2 - t1)) s"
  health | sort | sed 's/^/  /'
  cat <<EOM
  Airflow UI   http://127.0.0.1:$(setting SOCIAL_TONE_AIRFLOW_PORT || true)   login: admin / AIRFLOW_ADMIN_PASSWORD in $ENV_FILE
  MLflow UI    http://127.0.0.1:$(setting SOCIAL_TONE_MLFLOW_PORT || true)   login: $(setting MLFLOW_TRACKING_USERNAME) / MLFLOW_TRACKING_PASSWORD in $ENV_FILE
  Triton       HTTP 127.0.0.1:$(setting SOCIAL_TONE_TRITON_HTTP_PORT), gRPC 127.0.0.1:$(setting SOCIAL_TONE_TRITON_GRPC_PORT)
  Drops        $(setting SOCIAL_TONE_DATA_DIR)/inbox/   (owned by uid 50000, see README "A team server")
  More workers TEAM_WORKERS=N make team-up
EOM
  ;;
down)
  compose down --remove-orphans ${TEAM_PURGE:+--volumes}
  left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
  [ -z "$left" ] || { echo "containers left: $left" >&2; exit 1; }
  echo "team stack '$PROJECT' stopped, no container left${TEAM_PURGE:+ (volumes removed)}"
  ;;
ps) health | sort ;;
*) echo "usage: $0 up|down|ps" >&2; exit 2 ;;
esac
