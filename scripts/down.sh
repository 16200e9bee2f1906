#!/usr/bin/env bash
# `make down`: stop what `make demo` started, by process group (and the Docker engine when the
# demo started it); verify nothing is left running and say what stays on disk.
set -uo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO_DIR:-$PWD/.demo}
left=0
for name in airflow triton mlflow; do
  f=$DEMO/run/$name.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null
    sleep 1
  fi
  if pgrep -g "$pid" >/dev/null 2>&1; then echo "  $name: processes left in group $pid" >&2; left=1
  else echo "  $name stopped"; rm -f "$f"; fi
done
# the tritonserver child runs in a session of its own and dies with its parent (PR_SET_PDEATHSIG)
for _ in $(seq 15); do pgrep -f "model-repository=$DEMO/data/triton" >/dev/null || break; sleep 1; done
if pgrep -f "model-repository=$DEMO/data/triton" >/dev/null; then echo "  tritonserver left running" >&2; left=1; fi
images=$(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' 2>/dev/null | grep '^social-tone/' | sort -u -k2 \
         | awk '{print $2}' | paste -sd+ - || true)
# the engine: stopped only when `make demo` started it (it then noted its pid); containerd,
# which dockerd started, stops with it
f=$DEMO/run/dockerd.started
if [ -f "$f" ]; then
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  if kill -0 "$pid" 2>/dev/null; then echo "  dockerd (pid $pid) left running" >&2; left=1
  else echo "  dockerd stopped (the demo had started it)"; rm -f "$f"; fi
elif pgrep -x dockerd >/dev/null; then
  echo "  dockerd left running: it was running before the demo"
fi
if [ -d "$DEMO" ]; then
  echo "left on disk: $DEMO ($(du -sh "$DEMO" 2>/dev/null | cut -f1): data root, logs, generated secrets)${images:+, images social-tone/* ($images)}"
  echo "  make demo reuses them; make clean removes them"
fi
exit $left
