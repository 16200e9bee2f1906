#!/usr/bin/env bash
# Start a Docker engine on a machine that has none running (CI, the embedded demo).
# Installs Debian's docker.io when dockerd is missing. No default bridge: the demo's task
# containers use network_mode "host" (Triton, MLflow on 127.0.0.1) or "none". iptables stays on:
# it is what makes the team stack's internal networks internal.
# Idempotent: does nothing when an engine already answers.
# DOCKERD_STARTED_FILE: where to note the pid of a dockerd this call started (`make down`
# stops that one, and never an engine that was already running).
set -euo pipefail
SOCK=${DOCKER_HOST_SOCK:-/var/run/docker.sock}
if docker -H "unix://$SOCK" info >/dev/null 2>&1; then
  echo "docker engine already running at $SOCK"; exit 0
fi
if ! command -v dockerd >/dev/null; then
  sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq docker.io >/dev/null
fi
LOG=${DOCKERD_LOG:-/var/log/social-tone-dockerd.log}
# containerd is started by dockerd itself when not running
setsid nohup dockerd --host "unix://$SOCK" --bridge=none \
  >"$LOG" 2>&1 < /dev/null &
if [ -n "${DOCKERD_STARTED_FILE:-}" ]; then mkdir -p "$(dirname "$DOCKERD_STARTED_FILE")"; echo $! > "$DOCKERD_STARTED_FILE"; fi
for _ in $(seq 1 60); do
  if docker -H "unix://$SOCK" info >/dev/null 2>&1; then echo "docker engine up (log $LOG)"; exit 0; fi
  sleep 1
done
echo "dockerd did not come up; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1
