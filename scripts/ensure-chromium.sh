#!/usr/bin/env bash
# Makes sure headless Chromium and ChromeDriver are installed for the browser tests, from
# Debian's packages `chromium` and `chromium-driver` (run as root, as in CI).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing ${missing[*]} for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
# Another apt run (a parallel job) holds the lock for a while: wait for it instead of failing.
apt=($sudo apt-get -o DPkg::Lock::Timeout=600 -qq)
"${apt[@]}" update
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
/usr/bin/chromium --version
/usr/bin/chromedriver --version
