#!/usr/bin/env bash
# `make down`: stop what `make demo` started, by process group; verify nothing is left.
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
exit $left
