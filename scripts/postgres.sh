#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for
# the user `postgres`, starting or installing one if needed, and prints the
# admin URL the tests create their databases from. Sourced or run by
# scripts/test and .ci/run; safe to run again.
set -euo pipefail

host=127.0.0.1 port=5432
url="postgres://postgres@${host}:${port}/postgres"

answers() { psql "$url" -Atqc 'select 1' >/dev/null 2>&1; }

if ! command -v psql >/dev/null 2>&1 || ! answers; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
  fi
  version=$(ls /etc/postgresql | sort -V | tail -1)
  hba="/etc/postgresql/${version}/main/pg_hba.conf"
  # Tests connect over TCP as postgres without a password (a throwaway server).
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || pg_ctlcluster --skip-systemctl-redirect "$version" main reload >&2
  for _ in $(seq 1 60); do answers && break; sleep 0.5; done
  answers || { echo "postgres.sh: PostgreSQL does not answer on ${host}:${port}" >&2; exit 1; }
fi
echo "$url"
