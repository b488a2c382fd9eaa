#!/usr/bin/env bash
# deploy/demo.sh <base-url> <token> — loads the ECS demo data with the `ecs` CLI:
# `ecs apply deploy/demo/ --yes` creates namespace `checkout` (JSON Schema 2020-12 with
# defaults), tenants acme (enterprise) and globex (standard), and layers at the global
# scope (locking /payment/provider), env=prod, edition=enterprise, tenant=acme and
# env=prod&tenant=globex; then `ecs tokens issue` makes a tenant-admin API key for acme
# (saved in .ecs/run/acme-admin-token).
# The `ecs` binary is $ECS_BIN (default target/release/ecs, built by deploy/run.sh).
# Fails loudly (non-zero exit, the server's problem printed) on any error.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 <base-url> <token>   e.g. $0 http://127.0.0.1:8080 \"\$(cat .ecs/run/admin-token)\"" >&2
    exit 64
fi
ECS_BIN=${ECS_BIN:-target/release/ecs}
export ECS_URL=${1%/} ECS_TOKEN=$2
cd "$(dirname "$0")/.."

"$ECS_BIN" apply deploy/demo/ --yes -m "demo data"

# A tenant admin for acme: it may edit only acme's layers and read acme's
# resolved configuration. The secret is shown once; keep it next to the admin token.
TENANT_TOKEN_FILE=${ECS_DEMO_TENANT_TOKEN_FILE:-.ecs/run/acme-admin-token}
mkdir -p "$(dirname "$TENANT_TOKEN_FILE")"
secret=$("$ECS_BIN" tokens issue "acme tenant admin (demo)" --role tenant-admin --tenant acme)
(umask 077 && printf '%s' "$secret" >"$TENANT_TOKEN_FILE")
echo "tenant admin token for acme saved in $TENANT_TOKEN_FILE" >&2

echo "demo data loaded into $ECS_URL" >&2
