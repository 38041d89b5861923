#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine: `docker compose config` when the plugin
# is there, else Debian's docker-compose (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
  docker compose config --quiet
else
  if ! command -v docker-compose >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null; }
  fi
  docker-compose config --quiet
fi
echo "docker-compose.yml is valid"
