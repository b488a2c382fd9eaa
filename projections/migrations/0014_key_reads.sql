-- Key reads reported by SDK clients, summed per hour (docs/observability.md,
-- ADR 25). Operational telemetry like drift_instances: not replayed, untouched
-- by rebuilds. A key is a top-level property of a namespace's document.
CREATE TABLE key_reads (
    namespace text NOT NULL,
    key       text NOT NULL,
    env       text NOT NULL,
    service   text NOT NULL,
    hour      timestamptz NOT NULL,
    reads     bigint NOT NULL,
    PRIMARY KEY (namespace, key, env, service, hour)
);
CREATE INDEX key_reads_hour ON key_reads (namespace, hour);
