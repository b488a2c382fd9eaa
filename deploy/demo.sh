#!/usr/bin/env bash
# deploy/demo.sh <base-url> <token> — loads the ECS demo data through the HTTP API v1:
# namespace `checkout` (JSON Schema 2020-12 with defaults), tenants acme (enterprise)
# and globex (standard), and layers at the global scope (locking /payment/provider),
# env=prod, edition=enterprise, tenant=acme and env=prod&tenant=globex, and a
# tenant-admin API key for acme (saved in .ecs/run/acme-admin-token).
# Fails loudly (non-zero exit, server's problem body printed) on any error.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 <base-url> <token>   e.g. $0 http://127.0.0.1:8080 \"\$(cat .ecs/run/admin-token)\"" >&2
    exit 2
fi
BASE=${1%/}
TOKEN=$2

# api METHOD PATH BODY
api() {
    local method=$1 path=$2 body=$3
    printf '%s %s\n' "$method" "$path" >&2
    curl -sS --fail-with-body -X "$method" \
        -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' \
        -H 'Accept: application/json' \
        --data-binary "$body" \
        "$BASE$path"
    echo
}

api PUT /v1/namespaces/checkout '{
  "description": "Checkout settings: currency, cart limits, payment provider, features",
  "schema": {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": false,
    "properties": {
      "currency": {
        "type": "string",
        "pattern": "^[A-Z]{3}$",
        "default": "USD",
        "description": "ISO 4217 currency code"
      },
      "max_items": {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 50,
        "description": "Maximum number of items in a cart"
      },
      "payment": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "provider": {
            "type": "string",
            "enum": ["stripe", "adyen", "braintree"],
            "default": "stripe"
          },
          "retries": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10,
            "default": 2
          }
        }
      },
      "features": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "express": {
            "type": "boolean",
            "default": false,
            "description": "Express (one-click) checkout"
          }
        }
      }
    }
  }
}'

api PUT /v1/tenants/acme '{"edition": "enterprise", "name": "Acme Corp"}'
api PUT /v1/tenants/globex '{"edition": "standard", "name": "Globex"}'

api PUT '/v1/namespaces/checkout/layer' '{
  "values": {
    "currency": "USD",
    "max_items": 100,
    "payment": {"provider": "stripe", "retries": 3},
    "features": {"express": false}
  },
  "lock": ["/payment/provider"],
  "message": "Global defaults; the payment provider is fixed company-wide"
}'

api PUT '/v1/namespaces/checkout/layer?env=prod' '{
  "values": {"max_items": 500, "payment": {"retries": 5}},
  "message": "Production: bigger carts, more payment retries"
}'

api PUT '/v1/namespaces/checkout/layer?edition=enterprise' '{
  "values": {"max_items": 1000, "features": {"express": true}},
  "message": "Enterprise edition: express checkout and the largest carts"
}'

api PUT '/v1/namespaces/checkout/layer?tenant=acme' '{
  "values": {"currency": "EUR"},
  "message": "Acme bills in euros"
}'

api PUT '/v1/namespaces/checkout/layer?env=prod&tenant=globex' '{
  "values": {"currency": "GBP", "features": {"express": true}},
  "message": "Globex in production: pounds sterling, express checkout pilot"
}'

# A tenant admin for acme: it may edit only acme's layers and read acme's
# resolved configuration. The secret is shown once; keep it next to the admin token.
TENANT_TOKEN_FILE=${ECS_DEMO_TENANT_TOKEN_FILE:-.ecs/run/acme-admin-token}
issued=$(api POST /v1/tokens '{"name": "acme tenant admin (demo)", "role": "tenant-admin", "tenant": "acme"}')
mkdir -p "$(dirname "$TENANT_TOKEN_FILE")"
(umask 077 && printf '%s' "$issued" | sed -E 's/.*"token":"([^"]+)".*/\1/' >"$TENANT_TOKEN_FILE")
echo "tenant admin token for acme saved in $TENANT_TOKEN_FILE" >&2

echo "demo data loaded into $BASE" >&2
