-- What a namespace's documents are: configuration or feature flags
-- (docs/flags.md). Namespaces defined before flags hold configuration. The
-- history keeps it too, so a point-in-time read resolves with the kind the
-- namespace had then.
ALTER TABLE namespaces ADD COLUMN kind text NOT NULL DEFAULT 'config';
ALTER TABLE namespace_history ADD COLUMN kind text NOT NULL DEFAULT 'config';
