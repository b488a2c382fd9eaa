-- The audit log: one row per audit record. Accepted changes are projected from
-- the events stream (key `accepted:<position>`, in the same transaction as
-- the other projection tables; a rebuild deletes and replays only those);
-- refused attempts are projected from the ECS_AUDIT stream (key
-- `refused:<record id>`, offset `audit` in projection_offsets) and survive
-- rebuilds (docs/adr/0005-audit-log.md).
CREATE TABLE audit (
    key            text PRIMARY KEY,
    at             timestamptz NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('accepted', 'refused')),
    action         text NOT NULL,
    actor          text,
    role           text,
    request_id     text,
    correlation_id text,
    tenant         text,
    namespace      text,
    scope          jsonb,
    reason         text,
    before         jsonb,
    after          jsonb,
    message        text,
    position       bigint
);
-- The cursor order (newest first: at DESC, key DESC), and each filter with it.
CREATE INDEX audit_at_key ON audit (at, key);
CREATE INDEX audit_outcome_at ON audit (outcome, at, key);
CREATE INDEX audit_tenant_at ON audit (tenant, at, key);
CREATE INDEX audit_namespace_at ON audit (namespace, at, key);
CREATE INDEX audit_actor_at ON audit (actor, at, key);
CREATE INDEX audit_action_at ON audit (action, at, key);
CREATE INDEX audit_request_id ON audit (request_id);
