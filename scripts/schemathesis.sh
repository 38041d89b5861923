#!/usr/bin/env bash
# Property-based API testing: schemathesis (from PyPI, installed into target/schemathesis-venv
# when missing) generates requests from /openapi.json against a running `firstcall serve`
# (SQLite, file mail, API token and webhook secrets from the environment) and checks that no
# answer is a 5xx or a dropped connection, and that every status and body matches the schema.
#
#   scripts/schemathesis.sh [seconds]     (default 90; needs target/debug/firstcall)
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-90}"
bin="${FIRSTCALL_BIN:-target/debug/firstcall}"
venv=target/schemathesis-venv
version=4.32.5
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=schemathesis-api-token-0123
FIRSTCALL__DATABASE__URL="sqlite://$work/firstcall.db" \
FIRSTCALL__HTTP__PORT="$port" \
FIRSTCALL__HTTP__RATE_LIMIT_PER_MINUTE=0 \
FIRSTCALL__MAIL__OUTBOX_DIR="$work/outbox" \
FIRSTCALL__API__TOKENS="$token" \
FIRSTCALL__WEBHOOKS__GENERIC__SECRETS=schemathesis-generic-secret \
FIRSTCALL__WEBHOOKS__HUBSPOT__CLIENT_SECRETS=schemathesis-hubspot-secret \
FIRSTCALL__WEBHOOKS__PIPEDRIVE__BASIC_AUTH=user:schemathesis-password \
FIRSTCALL__WEBHOOKS__SALESFORCE__ORGANIZATION_IDS='["00D5e000000KQ2eEAG"]' \
FIRSTCALL__LOG__LEVEL=warn NO_COLOR=1 \
  "$bin" serve >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done

status=0
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance \
  --header "Authorization: Bearer $token" \
  --max-time "$budget" --workers 2 --seed 1 --no-color || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "schemathesis: firstcall died during the run"; tail -50 "$work/serve.log"; exit 1
fi
if grep -q panicked "$work/serve.log"; then
  echo "schemathesis: firstcall panicked during the run"; grep -A5 panicked "$work/serve.log" | head -40; exit 1
fi
exit "$status"
