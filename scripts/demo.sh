#!/usr/bin/env bash
# `make demo`: the embedded stack on 127.0.0.1, a synthetic drop through the retraining DAG,
# three days of posts through the daily DAG (the trends dashboard), then where to look. Safe to
# run again: running services are reused, a new drop is added. Stop everything with `make down`
# (scripts/down.sh), which also stops the Docker engine if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
: "${PY:?run through make demo}" "${AF_PY:?run through make demo}"
DEMO=${DEMO_DIR:-$REPO/.demo}
DATA=$DEMO/data
ROWS=${DEMO_ROWS:-20000}
AIRFLOW_PORT=${DEMO_AIRFLOW_PORT:-8080}
MLFLOW_PORT=${DEMO_MLFLOW_PORT:-5000}
TRITON_HTTP=${DEMO_TRITON_HTTP:-8000}; TRITON_GRPC=${DEMO_TRITON_GRPC:-8001}; TRITON_METRICS=${DEMO_TRITON_METRICS:-8002}
mkdir -p "$DEMO/run" "$DEMO/logs" "$DATA"/{inbox,triton,mlflow/artifacts,scoring/incoming}
echo "== Docker engine and the task image (built offline once, then reused)"
DOCKERD_STARTED_FILE=$DEMO/run/dockerd.started docker/start-dockerd.sh
docker/build-images.sh
# Generated secrets live in $DEMO/secrets.env (mode 0600), made once and reused: Triton's
# model-repository API answers only SOCIAL_TONE_TRITON_ADMIN_SECRET (the reload task gets it).
umask 077
# Airflow's JWT secret is generated here too: standalone's own is 16 bytes, which PyJWT warns
# about on every request
[ -s "$DEMO/secrets.env" ] || "$PY" -c 'import secrets; print("SOCIAL_TONE_TRITON_ADMIN_SECRET=" + secrets.token_urlsafe(32))' \
  > "$DEMO/secrets.env"
grep -q '^AIRFLOW__API_AUTH__JWT_SECRET=' "$DEMO/secrets.env" || "$PY" -c \
  'import secrets; print("AIRFLOW__API_AUTH__JWT_SECRET=" + secrets.token_urlsafe(48))' >> "$DEMO/secrets.env"
set -a; . "$DEMO/secrets.env"; set +a
umask 022

export AIRFLOW_HOME=$DEMO/airflow PYTHONPATH=$REPO
export AIRFLOW__CORE__DAGS_FOLDER=$REPO/dags AIRFLOW__CORE__PLUGINS_FOLDER=$REPO/plugins AIRFLOW__CORE__LOAD_EXAMPLES=False
# DAGs start paused and are unpaused once the API server answers: standalone starts the scheduler
# first, and a task started before the API server is up fails its first try
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$AIRFLOW_PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$AIRFLOW_PORT/execution/
# (log servers are off, see scripts/airflow-shim; ports set anyway so two demos never collide)
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$((AIRFLOW_PORT + 713)) AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=$((AIRFLOW_PORT + 714))
export AIRFLOW_CONN_FS_DEFAULT='{"conn_type": "fs", "extra": {"path": "/"}}'
export SOCIAL_TONE_DATA_ROOT=$DATA SOCIAL_TONE_POKE_INTERVAL=5
export SOCIAL_TONE_TRITON_GRPC=127.0.0.1:$TRITON_GRPC
export SOCIAL_TONE_TRITON_EXECUTION_ENV=$("$PY" -c 'import sys; print(sys.prefix)')
export MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT
export SOCIAL_TONE_SCORING_START=$(date -u -d '3 days ago' +%F)

alive() { [ -f "$DEMO/run/$1.pid" ] && kill -0 "$(cat "$DEMO/run/$1.pid")" 2>/dev/null; }
start() {  # name, command...: its own session (process group) so `make down` stops all of it
  local name=$1; shift
  if alive "$name"; then echo "  $name already running (pid $(cat "$DEMO/run/$name.pid"))"; return; fi
  setsid "$@" > "$DEMO/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$DEMO/run/$name.pid"
  echo "  $name started (pid $!, log $DEMO/logs/$name.log)"
}
# a failure names its line and shows the end of the service logs (CI keeps only this output)
trap 'rc=$?; echo "demo.sh: line $LINENO failed (exit $rc); the last service log lines:" >&2
      for f in "$DEMO"/logs/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done' ERR
# Airflow's API on SQLite can answer 5xx while the scheduler holds the database: calls retry
CURL=(curl -sSf --retry 5 --retry-all-errors --retry-delay 2)
wait_for() {  # what, seconds, test command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq "$secs"); do if "$@" >/dev/null 2>&1; then return 0; fi; sleep 1; done
  echo "$what did not come up in ${secs}s; see $DEMO/logs/" >&2; return 1
}

DAYS=()
# three past days of posts for the daily DAG, written before Airflow starts: it backfills them
# from SOCIAL_TONE_SCORING_START, and a past day without posts is skipped at once; today's
# run waits for today's posts (until tomorrow 06:00 UTC)
for back in 3 2 1; do
  day=$(date -u -d "$back days ago" +%F)
  DAYS+=("$day")
  [ -e "$DATA/scoring/incoming/$day" ] || "$PY" -m tasks synth --kind scoring --out "$DATA/scoring/incoming" \
    --rows 5000 --days 1 --start "$day" > /dev/null
done

echo "== starting the embedded stack (all on 127.0.0.1)"
start mlflow "$PY" -m mlflow server --backend-store-uri "sqlite:///$DATA/mlflow/mlflow.db" \
  --artifacts-destination "$DATA/mlflow/artifacts" --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1
start triton "$PY" -m tasks serve --repo "$DATA/triton" --workdir "$DEMO/triton" --load social_tone \
  --http-port "$TRITON_HTTP" --grpc-port "$TRITON_GRPC" --metrics-port "$TRITON_METRICS"
# standalone starts its components as `airflow ...` commands from PATH: the shim (no log
# servers on 0.0.0.0) and then the Airflow venv come first
export SOCIAL_TONE_AIRFLOW_BIN=$(dirname "$AF_PY")
PATH=$REPO/scripts/airflow-shim:$SOCIAL_TONE_AIRFLOW_BIN:$PATH start airflow "$AF_PY" -m airflow standalone
wait_for "MLflow" 120 curl -sf "http://127.0.0.1:$MLFLOW_PORT/health"
wait_for "Triton" 120 curl -sf "http://127.0.0.1:$TRITON_HTTP/v2/health/ready"
wait_for "Airflow" 240 curl -sf "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health"

PASSFILE=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
wait_for "the Airflow admin password" 60 test -s "$PASSFILE"
PASSWORD=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" "$PASSFILE")
# the password and the token go through stdin and a 0600 header file, never a command line (ps)
AUTH=$DEMO/run/auth-header
(umask 077; "$PY" -c 'import json,sys; print(json.dumps({"username": "admin", "password": sys.stdin.read().strip()}))' \
   <<<"$PASSWORD" | "${CURL[@]}" -X POST "http://127.0.0.1:$AIRFLOW_PORT/auth/token" -H 'Content-Type: application/json' \
   --data-binary @- | "$PY" -c 'import json,sys; print("Authorization: Bearer " + json.load(sys.stdin)["access_token"])' \
   > "$AUTH")
api() { "${CURL[@]}" -H "@$AUTH" "http://127.0.0.1:$AIRFLOW_PORT/api/v2/$1"; }
for dag in warcov_retrain warcov_daily_scoring warcov_retrain_now; do
  wait_for "the DAG $dag to be parsed" 180 curl -sf -H "@$AUTH" "http://127.0.0.1:$AIRFLOW_PORT/api/v2/dags/$dag"
  "${CURL[@]}" -X PATCH -H "@$AUTH" -H 'Content-Type: application/json' -d '{"is_paused": false}' \
    "http://127.0.0.1:$AIRFLOW_PORT/api/v2/dags/$dag" > /dev/null
done

N=$(ls "$DATA/archive" 2>/dev/null | grep -c '^demo-' || true)
DROP=demo-$(printf %03d $((N + 1)))
echo "== dropping $DROP ($ROWS synthetic WarCov-like posts) into $DATA/inbox"
before=$(api "dags/warcov_retrain/dagRuns?state=success&limit=1000" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["total_entries"])')
"$PY" -m tasks synth --out "$DATA/inbox/$DROP" --rows "$ROWS" --seed $((41 + N)) --id-start $((N * ROWS)) \
  --world-seed 42 > /dev/null

echo "== waiting for warcov_retrain to take it through training, the gate and Triton (a few minutes)"
for _ in $(seq 900); do
  n=$(api "dags/warcov_retrain/dagRuns?state=success&limit=1000" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["total_entries"])')
  failed=$(api "dags/warcov_retrain/dagRuns?state=failed&limit=1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["total_entries"])')
  if [ "$n" -gt "$before" ] && [ -e "$DATA/archive/$DROP" ]; then break; fi
  if [ "$failed" -gt "${FAILED_BEFORE:=$failed}" ]; then echo "a run failed: see the Airflow UI" >&2; exit 1; fi
  sleep 2
done
[ -e "$DATA/archive/$DROP" ] || { echo "timed out waiting for the run" >&2; exit 1; }

echo "== a sample prediction from Triton"
"$PY" - "$DATA" "$DROP" "127.0.0.1:$TRITON_GRPC" <<'PYEOF'
import json, sys
import numpy as np
from tasks.contract import open_drop
from tasks.topics import decide
from tasks.triton.client import TritonClient
from tasks.triton.repo import thresholds
data, drop, url = sys.argv[1:]
d = open_drop(f"{data}/archive/{drop}")
c = TritonClient(url)
names = c.label_names(d.manifest.n_labels, d.manifest.img_dim, d.manifest.txt_dim)
p = c.infer(np.asarray(d.img[:1]), np.asarray(d.txt[:1]))  # Triton answers logits
probs, topics = decide(p.logits, thresholds(f"{data}/triton", "social_tone", p.version)["thresholds"])
truth = np.asarray(d.labels[0]) if d.labels is not None else None
print(f"post {d.ids[0]} (model version {p.version}, Triton backend {c.config()['backend']}): top 5 topics")
for k in np.argsort(-probs[0])[:5]:
    said = "predicted" if topics[0][k] else "         "
    known = "" if truth is None else ("  truth: yes" if truth[k] else "  truth: no")
    print(f"  {names[k]:10s} p={probs[0][k]:.3f}  {said}{known}")
print("champion:", json.load(open(f"{data}/state/champion.json"))["run"])
PYEOF

echo "== waiting for warcov_daily_scoring to score and monitor ${DAYS[*]}"
daily_state() {  # "success" once every demo day's run succeeded, "failed" if one failed
  api "dags/warcov_daily_scoring/dagRuns?limit=100" | "$PY" -c '
import json, sys
runs = {r["logical_date"][:10]: r["state"] for r in json.load(sys.stdin)["dag_runs"] if r.get("logical_date")}
days = sys.argv[1:]
states = [runs.get(d) for d in days]
print("failed" if "failed" in states else "success" if all(s == "success" for s in states) else "running")' "${DAYS[@]}"
}
for _ in $(seq 300); do
  st=$(daily_state)
  [ "$st" = running ] || break
  sleep 2
done
case $st in
  success) ;;
  failed) echo "a daily run failed: see the Airflow UI (warcov_daily_scoring)" >&2; exit 1 ;;
  *) echo "timed out waiting for the daily runs" >&2; exit 1 ;;
esac
for day in "${DAYS[@]}"; do  # a run also succeeds when its day is skipped: check each was monitored
  [ -s "$DATA/monitoring/$day/report.json" ] || { echo "day $day was not monitored: see its wait_for_day log" >&2; exit 1; }
done
cat <<EOM

== social-tone demo is up (everything on 127.0.0.1)
  Airflow UI     http://127.0.0.1:$AIRFLOW_PORT   login: admin / $PASSWORD
  Topic trends   http://127.0.0.1:$AIRFLOW_PORT/social-tone/   (or "Topic trends" in the Airflow UI's menu)
  MLflow UI      http://127.0.0.1:$MLFLOW_PORT/#/experiments   (runs per step: train, evaluate, export-onnx, promote)
  Triton         HTTP 127.0.0.1:$TRITON_HTTP, gRPC 127.0.0.1:$TRITON_GRPC (model social_tone; README: a curl example)
  Data root      $DATA   (drop more into inbox/; reports in runs/*/eval, monitoring/)
  Logs           $DEMO/logs/
  Retrain now    trigger warcov_retrain_now in the UI (params form; no new drop needed)
  Stop           make down   (make clean also removes $DEMO and the images)
EOM
