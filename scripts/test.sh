#!/usr/bin/env bash
# The whole test suite. With CI=true the PostgreSQL/Redis/rqworker integration tests must
# run (never skip), so the services are started here when they are down.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL_DEFAULT="postgres://postgres@127.0.0.1:5432/test"
REDIS_URL_DEFAULT="redis://127.0.0.1:6379/15"

pg_up() { .venv/bin/python - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
}
redis_up() { .venv/bin/python - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 6379)) == 0 else 1)
PY
}

if [ "${CI:-}" = "true" ]; then
  if ! pg_up && command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  fi
  if ! redis_up && command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 30); do pg_up && redis_up && break; sleep 1; done
  # The browser tests (tests/e2e) drive Debian's Chromium; Playwright's own browser download
  # is not used. A failed install fails the run here, with the reason, not later in pytest.
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium for the e2e tests"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "could not install chromium (apt-get); the e2e tests cannot run" >&2
      exit 1
    fi
  fi
fi

# The suite runs on PostgreSQL when it is reachable (always in CI); integration tests
# find Redis through EVALGATE_TEST_REDIS_URL and start their own rqworker processes.
if [ -z "${DATABASE_URL:-}" ] && pg_up; then
  export DATABASE_URL="$PG_URL_DEFAULT"
fi
export EVALGATE_TEST_REDIS_URL="${EVALGATE_TEST_REDIS_URL:-$REDIS_URL_DEFAULT}"
export DEBUG="${DEBUG:-true}"
unset REDIS_URL  # unit tests run jobs in-process; integration tests opt in to Redis

.venv/bin/ruff check .
.venv/bin/python manage.py check --fail-level WARNING
.venv/bin/python manage.py makemigrations --check --dry-run
# Tests are spread over one process per core (pytest-xdist; each gets its own test database
# and Redis database). `--dist load` hands tests out in pytest-django's order, transactional
# tests last: they empty the tables as they finish (serialized rollback restores the migrated
# rows, such as the role groups, only at the start of the next one), so nothing may run after.
exec .venv/bin/pytest -n "${EVALGATE_TEST_PROCESSES:-auto}" --dist load "$@"
