#!/bin/sh
# Initialise $PGDATA once (superuser "postgres" with $POSTGRES_PASSWORD, scram-sha-256 over TCP),
# then run the server in the foreground. The same contract as the postgres image the operator
# rendered for: POSTGRES_PASSWORD and PGDATA.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required (the operator sets it from <env>-managed-admin)}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=scram-sha-256 \
        --auth-host=scram-sha-256 --encoding=UTF8 --no-instructions
    rm -f "$pwfile"
    # any address may connect, always with a password: the pod network is the only way in
    printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
    -c port="${PGPORT:-5432}" "$@"
