#!/usr/bin/env bash
# Run the whole test suite: on SQLite, and also on PostgreSQL when
# ZONEHOST_TEST_DATABASE_URL is set (postgresql+asyncpg://user@host/db).
# Installs the reference servers the tests compare against (NSD, Knot, ...)
# when they are missing and we are root.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"
DEBIAN_PACKAGES=(nsd knot knot-dnsutils bind9-dnsutils dnsperf)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # Debian's packages start their daemons on install: keep them stopped.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec python -m pytest "$@"
