#!/bin/sh
# Debian's PostgreSQL server binaries for the e2e PostgreSQL stack (tests/e2e/test_e2e_postgres.py,
# devtools/postgres.py starts a throw-away cluster of its own with them). Idempotent: does nothing
# when an initdb is installed under /usr/lib/postgresql. Needs root, as on CI and the project's
# machines. `apt-get update` comes first: a fresh machine's package lists can be missing or name a
# version the mirror no longer has.
set -eu
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_postgresql.sh: no PostgreSQL server under /usr/lib/postgresql; run as root (apt-get install postgresql)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "Installing Debian's postgresql for the e2e PostgreSQL stack (apt-get)..." >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
