-- Approval policies of namespaces, and change requests held for approval.
ALTER TABLE namespaces ADD COLUMN approval jsonb;
ALTER TABLE namespace_history ADD COLUMN approval jsonb;

CREATE TABLE change_requests (
    id            text PRIMARY KEY,
    namespace     text NOT NULL,
    scope_key     text NOT NULL,
    scope         jsonb NOT NULL,
    tenant        text,
    change        jsonb NOT NULL,
    message       text NOT NULL,
    base_revision bigint NOT NULL,
    author        text NOT NULL,
    status        text NOT NULL,
    decided_by    text,
    reason        text,
    opened_at     timestamptz NOT NULL,
    decided_at    timestamptz,
    position      bigint NOT NULL
);
CREATE INDEX change_requests_status ON change_requests (status, namespace);
