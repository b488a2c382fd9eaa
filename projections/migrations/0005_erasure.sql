-- Erased tenants: what was erased, when and by whom stays; the values do not.
ALTER TABLE tenants ADD COLUMN erased_at timestamptz;
ALTER TABLE tenants ADD COLUMN erased_by text;
