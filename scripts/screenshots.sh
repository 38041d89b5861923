#!/usr/bin/env bash
# Refreshes the README's screenshots (docs/screenshots/) from the browser tests that take them:
# the call page and the recap email, in headless Chromium at a phone's width (375 × 812).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-chromium.sh
cargo test -q --test browser -- the_call_page_reads_on_a_phone_and_a_desktop the_recap_email_reads_on_a_phone
cp tests/artifacts/call-page-phone.png tests/artifacts/recap-email-phone.png docs/screenshots/
ls -l docs/screenshots/
