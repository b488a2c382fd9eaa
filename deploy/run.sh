#!/usr/bin/env bash
# deploy/run.sh — THE quickstart: run the ECS product locally in the foreground.
#
# Installs prerequisites, starts NATS JetStream (store .ecs/run/nats, port
# $ECS_NATS_PORT or 4222) and PostgreSQL (data .ecs/run/pg, port $ECS_PG_PORT or 5433),
# creates database `ecs`, builds and starts `target/release/ecs serve` on
# $ECS_LISTEN (default 127.0.0.1:8080) with an admin token generated once and kept in
# .ecs/run/admin-token, loads the demo data (deploy/demo.sh) the first time, prints
# how to use it, and runs until Ctrl-C; then stops ecs, NATS and PostgreSQL cleanly.
# Data in .ecs/run survives restarts; delete that directory to start over.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh

RUN_DIR=.ecs/run
NATS_PORT=${ECS_NATS_PORT:-4222}
PG_PORT=${ECS_PG_PORT:-5433}
LISTEN=${ECS_LISTEN:-127.0.0.1:8080}
BASE_URL="http://$LISTEN"
ECS_PID=
PG_DIR=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$ECS_PID" ] && kill -0 "$ECS_PID" 2>/dev/null; then
        ecs_log "stopping ecs (pid $ECS_PID)"
        kill -TERM "$ECS_PID" 2>/dev/null || true
        for _ in $(seq 150); do
            kill -0 "$ECS_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$ECS_PID" 2>/dev/null; then
            ecs_warn "ecs did not stop in 15 s; killing it"
            kill -KILL "$ECS_PID" 2>/dev/null || true
        fi
        wait "$ECS_PID" 2>/dev/null || true
    fi
    ecs_stop_nats "$PWD/$RUN_DIR/nats"
    [ -z "$PG_DIR" ] || ecs_stop_postgres "$PG_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ecs_install_prereqs
mkdir -p "$RUN_DIR"

PG_DIR=$(ecs_pg_datadir "$RUN_DIR/pg")
ecs_start_postgres "$PG_DIR" "$PG_PORT"
PG_ADMIN="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
if [ "$("$ECS_PG_BIN/psql" "$PG_ADMIN" -tAc "SELECT 1 FROM pg_database WHERE datname = 'ecs'")" != "1" ]; then
    ecs_log "creating database ecs"
    "$ECS_PG_BIN/psql" "$PG_ADMIN" -q -c 'CREATE DATABASE ecs' >/dev/null
fi

ecs_start_nats "$RUN_DIR/nats" "$NATS_PORT"

ecs_log "cargo build --release -p ecs-api"
cargo build --release -p ecs-api
# Studio is optional for the API: without a suitable Node.js the quickstart still runs.
(ecs_build_studio) || ecs_warn "Config Studio was not built; /studio/ will say how to build it"

TOKEN_FILE=$RUN_DIR/admin-token
if [ ! -s "$TOKEN_FILE" ]; then
    ecs_log "generating the admin token ($TOKEN_FILE)"
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN_FILE")
fi
TOKEN=$(cat "$TOKEN_FILE")
MASTER_KEY_FILE=$RUN_DIR/master-key
if [ ! -s "$MASTER_KEY_FILE" ]; then
    ecs_log "generating the master key that wraps tenant data keys ($MASTER_KEY_FILE)"
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$MASTER_KEY_FILE")
fi

ecs_log "starting ecs serve on $LISTEN (log $RUN_DIR/ecs.log)"
# setsid: Ctrl-C reaches only this script; the trap then stops everything in order.
ECS_LISTEN=$LISTEN \
    ECS_NATS_URL="nats://127.0.0.1:$NATS_PORT" \
    ECS_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/ecs" \
    ECS_ADMIN_TOKEN=$TOKEN \
    ECS_MASTER_KEY="$(cat "$MASTER_KEY_FILE")" \
    ECS_STUDIO_DIR="$PWD/studio/dist" \
    setsid target/release/ecs serve </dev/null >>"$RUN_DIR/ecs.log" 2>&1 &
ECS_PID=$!

ready=
for _ in $(seq 600); do
    if ! kill -0 "$ECS_PID" 2>/dev/null; then break; fi
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/readyz" || true)" = 200 ]; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    tail -n 40 "$RUN_DIR/ecs.log" >&2 || true
    ecs_die "ecs did not become ready at $BASE_URL/readyz"
fi

status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    "$BASE_URL/v1/namespaces/checkout" || true)
case "$status" in
404)
    ecs_log "loading demo data (deploy/demo.sh)"
    deploy/demo.sh "$BASE_URL" "$TOKEN"
    ;;
200) ecs_log "demo data already loaded" ;;
*) ecs_warn "GET /v1/namespaces/checkout returned $status; not loading demo data" ;;
esac

cat <<INFO

  ECS is running at $BASE_URL   (NATS nats://127.0.0.1:$NATS_PORT, PostgreSQL 127.0.0.1:$PG_PORT)
  Config Studio: $BASE_URL/studio/   (sign in with the admin token below)
  Admin token: $TOKEN   (kept in $TOKEN_FILE)
  Tenant admin token for acme: $(cat "$RUN_DIR/acme-admin-token" 2>/dev/null || echo "(not issued)")   (kept in $RUN_DIR/acme-admin-token)

  Try:
    export ECS_TOKEN=$TOKEN
    curl -s -H "Authorization: Bearer \$ECS_TOKEN" $BASE_URL/v1/namespaces
    curl -s -H "Authorization: Bearer \$ECS_TOKEN" '$BASE_URL/v1/namespaces/checkout/resolved?env=prod&tenant=acme&explain=true'
    curl -s -H "Authorization: Bearer \$ECS_TOKEN" '$BASE_URL/v1/namespaces/checkout/layer/history?tenant=acme'
    curl -s -X PATCH -H "Authorization: Bearer \$ECS_TOKEN" -H 'Content-Type: application/json' \\
         -d '{"values": {"currency": "CHF"}, "message": "acme bills in Swiss francs"}' \\
         '$BASE_URL/v1/namespaces/checkout/layer?tenant=acme'

  Logs: $RUN_DIR/ecs.log, $RUN_DIR/nats/nats-server.log, $PG_DIR/server.log
  Press Ctrl-C to stop ecs, NATS and PostgreSQL.

INFO

# Foreground until Ctrl-C (the INT trap exits; EXIT runs cleanup) or until ecs exits.
set +e
wait "$ECS_PID"
rc=$?
set -e
ECS_PID=
ecs_warn "ecs exited on its own with status $rc; see $RUN_DIR/ecs.log"
exit "$rc"
