-- API keys issued by ECS: only the SHA-256 of each secret is kept.
CREATE TABLE tokens (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    role        jsonb NOT NULL,
    tenant      text,
    secret_hash text NOT NULL,
    expires_at  bigint,
    issued_by   text NOT NULL,
    issued_at   timestamptz NOT NULL,
    revoked_at  timestamptz,
    position    bigint NOT NULL
);
CREATE INDEX tokens_tenant ON tokens (tenant);
