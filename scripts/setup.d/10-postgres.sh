# Sourced by scripts/test: install Debian's PostgreSQL and start a throwaway
# cluster on 127.0.0.1:55432 (trust auth, data under /tmp), then export
# CHANGEOVER_TEST_PG for the store tests. Idempotent.
_pg_port=55432
_pg_data=/tmp/changeover-pg
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL is not installed and we are not root; PostgreSQL tests will fail" >&2
  fi
fi
_pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$_pg_bin" ]; then
  if ! "$_pg_bin/pg_isready" -q -h 127.0.0.1 -p "$_pg_port" 2>/dev/null; then
    rm -rf "$_pg_data"; mkdir -p "$_pg_data"; chown postgres "$_pg_data" 2>/dev/null || true
    _as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
    _as_pg "$_pg_bin/initdb -D $_pg_data/db -U postgres -A trust >/dev/null"
    _as_pg "$_pg_bin/pg_ctl -D $_pg_data/db -o '-p $_pg_port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off' -l $_pg_data/log -w start >/dev/null"
  fi
  "$_pg_bin/psql" -h 127.0.0.1 -p "$_pg_port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='changeover_test'" | grep -q 1 \
    || "$_pg_bin/createdb" -h 127.0.0.1 -p "$_pg_port" -U postgres changeover_test
  export CHANGEOVER_TEST_PG="postgresql+psycopg://postgres@127.0.0.1:${_pg_port}/changeover_test"
fi
