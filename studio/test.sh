#!/usr/bin/env bash
# studio/test.sh — Config Studio's checks, run by deploy/test.sh after the cargo tests:
#   npm ci, ESLint, tsc --noEmit, Vitest (unit), vite build, and the end-to-end
#   tests in headless Chromium against the real `ecs` binary.
# Needs ECS_TEST_PG_URL (a PostgreSQL the tests create databases in) and
# ECS_NATS_SERVER (a nats-server >= 2.10), as deploy/test.sh exports them, and
# the binary `cargo build -p ecs-api --bin ecs` builds (or $ECS_BIN).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh

: "${ECS_TEST_PG_URL:?ECS_TEST_PG_URL must name a PostgreSQL for the test databases}"
: "${ECS_NATS_SERVER:?ECS_NATS_SERVER must name a nats-server binary}"

ecs_install_node
if [ ! -x /usr/bin/chromium ]; then
    _ecs_apt_install chromium
fi
[ -x "${ECS_BIN:-target/debug/ecs}" ] || cargo build -p ecs-api --bin ecs

cd studio
ecs_log "studio: npm ci"
npm ci --no-audit --no-fund
ecs_log "studio: lint"
npm run lint
ecs_log "studio: typecheck"
npm run typecheck
ecs_log "studio: unit tests (Vitest)"
npm test
ecs_log "studio: build"
npx vite build
ecs_log "studio: end-to-end tests (headless Chromium)"
npm run e2e
