# Sourced by .ci/run: a PostgreSQL database for the PostgreSQL store's tests, exported as
# TENANG_TEST_PG_DSN (tests/pg_support.py; under CI those tests fail, never skip, when it
# is missing). Uses the server answering on 127.0.0.1:$PG_PORT (trust auth) where there
# is one; elsewhere installs Debian's postgresql package and runs a throw-away server of
# this run's own there (its own data directory, trust auth on loopback only). Either way
# the run creates a database of its own and drops it on exit; a server it started, it
# stops and deletes.
PG_PORT="${PG_PORT:-5432}"
pg_own=""
pg_db=""
pg_bin=""

pg_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; }

pg_admin_sql() {  # one statement as the postgres superuser (asyncpg: no psql needed)
  .venv/bin/python - "$PG_PORT" "$1" <<'PY'
import asyncio, sys
import asyncpg

async def main(port: str, sql: str) -> None:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                                 timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
PY
}

pg_cleanup() {
  if [ -n "$pg_db" ]; then
    pg_admin_sql "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" || echo "could not drop $pg_db"
  fi
  if [ -n "$pg_own" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_own/data" -m fast -w stop >/dev/null || true
    rm -rf "$pg_own"
  fi
}
trap pg_cleanup EXIT

pg_start_own() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq postgresql >/dev/null
  fi
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  # The package's own cluster (password auth), if its install started it, gives up the
  # port: this run's server is the one that answers there.
  pg_ctlcluster "$(basename "$(dirname "$pg_bin")")" main stop >/dev/null 2>&1 || true
  pg_own="$(mktemp -d /tmp/tenang-ci-pg.XXXXXX)"
  chown postgres "$pg_own"
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg_own/data" -U postgres -A trust \
    --no-sync >/dev/null
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_own/data" -l "$pg_own/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$pg_own" \
    start >/dev/null || { cat "$pg_own/server.log"; return 1; }
  echo "PostgreSQL: started a server of this run's own on 127.0.0.1:$PG_PORT"
}

pg_answers || pg_start_own
pg_db="tenang_ci_$$"
pg_admin_sql "CREATE DATABASE $pg_db"
export TENANG_TEST_PG_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/$pg_db"
echo "PostgreSQL: tests use $TENANG_TEST_PG_DSN (dropped on exit)"
