#!/bin/bash
# PostgreSQL for the compose stack: on first start, make the cluster in the (empty) volume with
# the superuser POSTGRES_USER, its password POSTGRES_PASSWORD and the database POSTGRES_DB;
# then run the server in the foreground (the container's only process). Inside the container the
# socket trusts its local users (psql -U USER works in `exec`); the network needs the password.
set -euo pipefail

: "${POSTGRES_USER:=lookalike}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
    echo "postgres: set POSTGRES_PASSWORD" >&2
    exit 1
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    # The password goes through a file readable by this user only, never a command line.
    pwfile=$(mktemp)
    trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    rm -f "$pwfile"
    # Other containers reach it over the stack's network, with the password.
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [[ "$POSTGRES_DB" != postgres ]]; then
        # Single-user mode: no server (and no socket) needed to make the database.
        echo "CREATE DATABASE \"$POSTGRES_DB\";" \
            | postgres --single -D "$PGDATA" -j postgres > /dev/null
    fi
fi

exec postgres -D "$PGDATA" -c listen_addresses='*'
