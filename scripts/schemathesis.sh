#!/usr/bin/env bash
# Property-based API testing: schemathesis (from PyPI, installed into target/schemathesis-venv
# when missing) generates requests from /openapi.json against a running `firstcall serve`
# (file mail, API token and webhook secrets from the environment) and checks that no answer is
# a 5xx or a dropped connection, and that every status and body matches the schema.
# scripts/schemathesis_hooks.py signs each webhook request as its CRM would, so requests reach
# the parsers and the database; the run fails unless most of each signed webhook's requests
# reached the parser (answered 2xx, 400 or 422: not 401, nor refused by routing or media type).
#
#   scripts/schemathesis.sh [seconds] [sqlite|postgres]   (default 90 s on SQLite; needs target/debug/firstcall)
#
# postgres: a fresh database on 127.0.0.1:5432 (user postgres), dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-90}"
backend="${2:-sqlite}"
bin="${FIRSTCALL_BIN:-target/debug/firstcall}"
venv=target/schemathesis-venv
version=4.32.5
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

work=$(mktemp -d)
pid=
db=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$db" ]; then dropdb -h 127.0.0.1 -U postgres --if-exists "$db" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
case "$backend" in
  sqlite) database_url="sqlite://$work/firstcall.db" ;;
  postgres)
    db="firstcall_schemathesis_$$"
    createdb -h 127.0.0.1 -U postgres "$db"
    database_url="postgres://postgres@127.0.0.1:5432/$db" ;;
  *) echo "usage: scripts/schemathesis.sh [seconds] [sqlite|postgres]"; exit 2 ;;
esac
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The server and the signing hooks read the same settings.
export FIRSTCALL__DATABASE__URL="$database_url" \
  FIRSTCALL__HTTP__PORT="$port" \
  FIRSTCALL__HTTP__PUBLIC_URL="http://127.0.0.1:$port" \
  FIRSTCALL__HTTP__RATE_LIMIT_PER_MINUTE=0 \
  FIRSTCALL__HTTP__FAILED_AUTH_LIMIT=0 \
  FIRSTCALL__MAIL__OUTBOX_DIR="$work/outbox" \
  FIRSTCALL__API__TOKENS=schemathesis-api-token-0123 \
  FIRSTCALL__WEBHOOKS__GENERIC__SECRETS=schemathesis-generic-secret \
  FIRSTCALL__WEBHOOKS__HUBSPOT__CLIENT_SECRETS=schemathesis-hubspot-secret \
  FIRSTCALL__WEBHOOKS__PIPEDRIVE__BASIC_AUTH=user:schemathesis-password \
  FIRSTCALL__WEBHOOKS__SALESFORCE__ORGANIZATION_IDS='["00D5e000000KQ2eEAG"]'
FIRSTCALL__LOG__LEVEL=warn NO_COLOR=1 "$bin" serve >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done

status=0
# One worker: with two threads, hypothesis's lambda descriptions call ast.parse concurrently,
# which CPython 3.11 can fail with "AST constructor recursion depth mismatch" (a tool error, not
# a finding; seen once in CI).
SCHEMATHESIS_HOOKS=scripts/schemathesis_hooks.py SCHEMATHESIS_COUNTS="$work/counts.json" \
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance \
  --max-time "$budget" --workers 1 --seed 1 --no-color || status=$?
# How many webhook requests got past the signature check to the parser: without that, "no 5xx"
# says nothing about the parsers and the database.
python3 - "$work/counts.json" <<'PY' || status=1
import json, sys
counts = json.load(open(sys.argv[1]))
short = []
print("schemathesis: webhook requests, and how many reached the parser (2xx, 400, 422)")
for path in sorted(counts):
    by_status = counts[path]
    total = sum(by_status.values())
    past = sum(n for s, n in by_status.items() if s.startswith("2") or s in ("400", "422"))
    print(f"  {path:36} {past:5} of {total:5} reached   statuses {dict(sorted(by_status.items()))}")
    # The secret-path endpoint is not configured in this run: all of its requests are refused.
    if path != "/webhooks/salesforce/{path_secret}" and past * 2 < total:
        short.append(path)
for path in ("/webhooks/generic", "/webhooks/hubspot", "/webhooks/pipedrive", "/webhooks/salesforce"):
    if path not in counts:
        short.append(path + " (never called)")
if short:
    print("schemathesis: most requests did not reach the parser: " + ", ".join(short))
    sys.exit(1)
PY
if ! kill -0 "$pid" 2>/dev/null; then
  echo "schemathesis: firstcall died during the run"; tail -50 "$work/serve.log"; exit 1
fi
if grep -q panicked "$work/serve.log"; then
  echo "schemathesis: firstcall panicked during the run"; grep -m4 -A1 panicked "$work/serve.log"; exit 1
fi
exit "$status"
