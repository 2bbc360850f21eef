# A private PostgreSQL server for the benchmarks (sourced by run.sh and probes.sh), for what the
# machine's server cannot give: more than its max_connections=100 (50 worker processes hold 100+
# connections) and a statement log of our own. Same durability settings as the machine's
# server (/etc/postgresql/15/main: fsync on, synchronous_commit on, full_page_writes on,
# autovacuum off, shared_buffers 128MB, max_wal_size 1GB) unless PG_PRIVATE_OPTS adds others.
#
#   pg_private_start [-c name=value ...]   (values without spaces)   # sets PG_PRIVATE_URL (postgres://postgres@127.0.0.1:PORT/postgres),
#                                          # PG_PRIVATE_DIR, PG_PRIVATE_LOG, PG_PRIVATE_SOCK
#   pg_private_psql SQL                    # runs SQL on it (unaligned, tuples only)
#   pg_private_stop                        # pg_ctl stop -m fast; removes the directory
#
# initdb refuses root, so initdb and pg_ctl run as the `postgres` user in a directory it owns.
# The caller stops the server in its EXIT trap (pg_private_stop is safe to call twice).

pg_private_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$bin/initdb" ] || { echo "no initdb in /usr/lib/postgresql/*/bin" >&2; return 1; }
    echo "$bin"
}

pg_as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_private_start() {
    local bin port
    bin=$(pg_private_bin) || return 1
    PG_PRIVATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/queuectl-bench-pg.XXXXXX")
    mkdir -p "$PG_PRIVATE_DIR/sock"
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$PG_PRIVATE_DIR"
    fi
    chmod 700 "$PG_PRIVATE_DIR"
    PG_PRIVATE_LOG="$PG_PRIVATE_DIR/server.log"
    PG_PRIVATE_SOCK="$PG_PRIVATE_DIR/sock"
    pg_as_postgres "$bin/initdb" -D "$PG_PRIVATE_DIR/data" --auth=trust -U postgres -N >/dev/null
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local opts="-k $PG_PRIVATE_SOCK -h 127.0.0.1 -p $port -c max_connections=300 -c fsync=on \
-c synchronous_commit=on -c full_page_writes=on -c autovacuum=off -c shared_buffers=128MB -c max_wal_size=1GB \
${PG_PRIVATE_OPTS:-} $*"
    if ! pg_as_postgres "$bin/pg_ctl" -D "$PG_PRIVATE_DIR/data" -o "$opts" -l "$PG_PRIVATE_LOG" -t 60 -w start >/dev/null; then
        echo "pg_ctl start failed; server log:" >&2
        tail -20 "$PG_PRIVATE_LOG" >&2
        return 1
    fi
    PG_PRIVATE_PORT=$port
    PG_PRIVATE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "private PostgreSQL server on 127.0.0.1:$port ($PG_PRIVATE_DIR)" >&2
}

pg_private_psql() {
    psql -X -A -t -q -h "$PG_PRIVATE_SOCK" -p "$PG_PRIVATE_PORT" -U postgres -d postgres -c "$1"
}

pg_private_stop() {
    [ -n "${PG_PRIVATE_DIR:-}" ] || return 0
    local bin
    bin=$(pg_private_bin) || return 0
    if [ -f "$PG_PRIVATE_DIR/data/postmaster.pid" ]; then
        pg_as_postgres "$bin/pg_ctl" -D "$PG_PRIVATE_DIR/data" -m fast -t 60 -w stop >/dev/null 2>&1 ||
            pg_as_postgres "$bin/pg_ctl" -D "$PG_PRIVATE_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_PRIVATE_DIR"
    PG_PRIVATE_DIR=
}
