#!/usr/bin/env bash
# Run zonehost on one machine: nameserver, API and mail forwarder, on the
# embedded SQLite store (./var/zonehost.sqlite3), with a demo zone.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"
exec zonehost serve "$@"
