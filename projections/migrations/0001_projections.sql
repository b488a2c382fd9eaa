-- Every table here is a projection of the events stream: droppable and
-- rebuilt by replay. Positions are stream sequences.

CREATE TABLE projection_offsets (
    name          text PRIMARY KEY,
    last_position bigint NOT NULL
);

-- One row per stream message (accepted command).
CREATE TABLE commands (
    position       bigint PRIMARY KEY,
    command_id     text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    revision       bigint NOT NULL,
    at             timestamptz NOT NULL,
    actor          text NOT NULL
);
CREATE INDEX commands_command_id ON commands (command_id);
CREATE INDEX commands_at ON commands (at);

CREATE TABLE namespaces (
    name        text PRIMARY KEY,
    description text NOT NULL,
    schema      jsonb,
    revision    bigint NOT NULL,
    position    bigint NOT NULL,
    updated_at  timestamptz NOT NULL,
    updated_by  text NOT NULL
);

CREATE TABLE namespace_history (
    name        text NOT NULL,
    revision    bigint NOT NULL,
    position    bigint NOT NULL,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    description text NOT NULL,
    schema      jsonb,
    PRIMARY KEY (name, revision)
);
CREATE INDEX namespace_history_position ON namespace_history (name, position);

CREATE TABLE tenants (
    id         text PRIMARY KEY,
    name       text,
    edition    text NOT NULL,
    revision   bigint NOT NULL,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL
);

CREATE TABLE tenant_history (
    id       text NOT NULL,
    revision bigint NOT NULL,
    position bigint NOT NULL,
    at       timestamptz NOT NULL,
    actor    text NOT NULL,
    name     text,
    edition  text NOT NULL,
    PRIMARY KEY (id, revision)
);
CREATE INDEX tenant_history_position ON tenant_history (id, position);

CREATE TABLE layers (
    namespace  text NOT NULL,
    scope_key  text NOT NULL,
    scope      jsonb NOT NULL,
    env        text,
    service    text,
    tenant     text,
    edition    text,
    values     jsonb NOT NULL,
    lock       jsonb NOT NULL,
    revision   bigint NOT NULL,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    message    text NOT NULL,
    PRIMARY KEY (namespace, scope_key)
);
CREATE INDEX layers_tenant ON layers (tenant);

CREATE TABLE layer_history (
    namespace text NOT NULL,
    scope_key text NOT NULL,
    scope     jsonb NOT NULL,
    tenant    text,
    revision  bigint NOT NULL,
    position  bigint NOT NULL,
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    message   text NOT NULL,
    values    jsonb NOT NULL,
    lock      jsonb NOT NULL,
    change    jsonb NOT NULL,
    PRIMARY KEY (namespace, scope_key, revision)
);
CREATE INDEX layer_history_position ON layer_history (namespace, position);
