-- Messages an operator chose to skip after a projection stopped on them
-- (POST /v1/admin/projections/{name}/skip, docs/operations.md). Not a
-- projection: a record of decisions, kept across rebuilds, which every run
-- of the projection (a rebuild included) honours.
CREATE TABLE projection_skips (
    projection text NOT NULL,
    position   bigint NOT NULL,
    error      text NOT NULL,
    skipped_by text NOT NULL,
    skipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);
