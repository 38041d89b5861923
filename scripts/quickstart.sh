#!/usr/bin/env bash
# Runs the README's quick start as written: the commands between `<!-- quickstart:start -->` and
# `<!-- quickstart:end -->`, the first (`serve`) in the background, the next (`demo`) once it
# answers. Then checks what a new user would look at: the recap file, the call page link and the
# dashboard with the printed token. It runs in the checkout, as a new user would; an existing
# ./data and ./outbox are moved aside for the run and put back afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t commands < <(awk '/<!-- quickstart:start -->/{on=1; next} /<!-- quickstart:end -->/{on=0} on' README.md \
  | grep -v '^```' | sed 's/[[:space:]]*#.*$//' | grep -v '^[[:space:]]*$')
[ "${#commands[@]}" -eq 2 ] || { echo "README quick start: expected 2 commands, found ${#commands[@]}: ${commands[*]}"; exit 1; }
serve_cmd=${commands[0]}
demo_cmd=${commands[1]}
echo "quick start, as written in README.md:"
printf '  %s\n' "$serve_cmd" "$demo_cmd"

# A new user's directory state: no database, no outbox (the checkout's own are kept aside).
aside=$(mktemp -d)
for d in data outbox; do [ -e "$d" ] && mv "$d" "$aside/"; done
log=$(mktemp)
restore() {
  [ -n "${serve_pid:-}" ] && kill -TERM -- "-$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf data outbox
  for d in data outbox; do [ -e "$aside/$d" ] && mv "$aside/$d" .; done
  rmdir "$aside" 2>/dev/null || true
}
trap restore EXIT

# No FIRSTCALL_* from the caller's shell: the embedded default, as on a fresh machine.
unset $(env | grep -o '^FIRSTCALL[A-Z_]*' || true)
setsid bash -c "$serve_cmd" >"$log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 600); do
  curl -fsS http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "serve exited:"; cat "$log"; exit 1; }
  sleep 1
done
curl -fsS http://127.0.0.1:8080/healthz >/dev/null || { echo "serve did not answer on 127.0.0.1:8080:"; tail -50 "$log"; exit 1; }
for _ in $(seq 1 50); do grep -q 'firstcall demo' "$log" && break; sleep 0.1; done
grep -q 'firstcall demo' "$log" || { echo "serve's log does not say what to do next:"; cat "$log"; exit 1; }

out=$(bash -c "$demo_cmd" 2>&1) || { echo "$out"; echo "--- serve's log:"; tail -50 "$log"; exit 1; }
echo "$out"
value() { echo "$out" | grep "^$1" | sed "s/^$1[[:space:]]*//" | awk '{print $1}'; }
eml=$(value "Read the recap:")
link=$(value "Call page:")
dashboard=$(value "Dashboard:")
token=$(value "API token:")
[ -s "$eml" ] || { echo "no recap file at '$eml'"; exit 1; }
grep -q 'text/calendar' "$eml" || { echo "the recap has no invite attached"; exit 1; }
page=$(curl -fsS "$link") || { echo "the call page link does not open: $link"; exit 1; }
echo "$page" | grep -q 'Northwind Logistics' || { echo "the call page does not show the deal"; exit 1; }
curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$dashboard" || { echo "the dashboard does not open with the printed token"; exit 1; }
echo "quick start: recap at $eml, call page and dashboard open"
