#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine: `docker compose config` when the plugin
# is there, else Debian's docker-compose (installed if missing). Checks the default stack and the
# `workers` profile (two `firstcall worker` replicas beside `serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
  compose() { docker compose "$@"; }
else
  if ! command -v docker-compose >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null; }
  fi
  compose() { docker-compose "$@"; }
fi
compose config --quiet
compose --profile workers config --quiet
scaled=$(compose --profile workers config)
echo "$scaled" | grep -q '^  worker:' || { echo "the workers profile has no worker service"; exit 1; }
echo "$scaled" | sed -n '/^  worker:/,/^  [a-z]/p' | grep -q 'replicas: 2' || { echo "the worker service should run 2 replicas"; exit 1; }
echo "docker-compose.yml is valid (default stack and the workers profile)"
