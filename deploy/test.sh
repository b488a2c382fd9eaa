#!/usr/bin/env bash
# deploy/test.sh — THE test command for ECS.
#
# Installs prerequisites (PostgreSQL, nats-server >= 2.10, curl), starts a private
# throw-away PostgreSQL under .ecs/test/pg on a free port and exports
# ECS_TEST_PG_URL for the test harness (tests start their own NATS servers), then runs
#   cargo fmt --all -- --check
#   cargo clippy --workspace --all-targets -- -D warnings
#   deploy/check-packaging.sh (Dockerfile, Kubernetes manifests, systemd units, NATS
#   cluster configuration: checked with the tools that run here)
#   cargo test --workspace [extra args passed to this script]
#   studio/test.sh (Config Studio: lint, typecheck, unit tests, build, end to end
#   in headless Chromium against the real `ecs` binary)
# PostgreSQL is always stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh

ecs_install_prereqs

PG_DIR=$(ecs_pg_datadir .ecs/test/pg)
cleanup() {
    ecs_stop_postgres "$PG_DIR"
}
trap cleanup EXIT

# A fresh cluster every run: test databases never accumulate.
ecs_stop_postgres "$PG_DIR"
rm -rf "$PG_DIR"
PG_PORT=$(ecs_free_port)
ECS_PG_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    ecs_start_postgres "$PG_DIR" "$PG_PORT"
export ECS_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
# The harness runs this binary for its NATS servers.
export ECS_NATS_SERVER
ecs_log "ECS_TEST_PG_URL=$ECS_TEST_PG_URL"

ecs_log "cargo fmt --all -- --check"
cargo fmt --all -- --check

ecs_log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The fault-injection suite (tests/faults) runs the real `ecs` binary.
cargo build -p ecs-api --bin ecs
# The packaging (Dockerfile, Kubernetes, systemd, NATS cluster), checked statically.
ecs_log "deploy/check-packaging.sh"
deploy/check-packaging.sh
ecs_log "cargo test --workspace $*"
cargo test --workspace "$@"

# Config Studio, against the PostgreSQL started above and the binary built above.
ecs_log "studio/test.sh"
studio/test.sh

ecs_log "all checks passed"
