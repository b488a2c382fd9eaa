-- What each running SDK client last reported (docs/observability.md, ADR 24).
-- Not a projection of the events stream: operational telemetry, upserted by
-- instance on every report, never replayed and untouched by rebuilds.
CREATE TABLE drift_instances (
    env           text NOT NULL,
    service       text NOT NULL,
    instance      text NOT NULL,
    sdk_version   text NOT NULL,
    -- How the report arrived: nats or http.
    via           text NOT NULL,
    interval_secs bigint NOT NULL,
    -- [{"namespace", "tenants"?, "applied_position"}]
    followed      jsonb NOT NULL,
    subscribers   bigint NOT NULL,
    stopping      boolean NOT NULL,
    -- When the client started and sent its last report, by its own clock.
    started_at    timestamptz,
    sent_at       timestamptz,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    PRIMARY KEY (env, service, instance)
);
CREATE INDEX drift_instances_last_seen ON drift_instances (last_seen);
