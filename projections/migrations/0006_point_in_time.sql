-- Point-in-time reads find, per layer, the newest revision at or before a
-- position with one index probe instead of scanning the namespace's history.
CREATE INDEX layer_history_scope_position ON layer_history (namespace, scope_key, position DESC);
