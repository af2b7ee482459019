#!/bin/sh
# Debian's Chromium for the browser test (tests/e2e/test_e2e_browser.py). Idempotent: does
# nothing when /usr/bin/chromium is there. Needs root, as on CI and the project's machines.
# `apt-get update` comes first: a fresh machine's package lists can be missing or name a
# version the mirror no longer has.
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_chromium.sh: /usr/bin/chromium is missing; run as root (apt-get install chromium)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "Installing Debian's chromium for the browser test (apt-get)..." >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
test -x /usr/bin/chromium
