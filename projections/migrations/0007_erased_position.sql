-- Where each tenant was erased in the events stream, so readers that follow
-- the feed over HTTP learn of erasures after the position they hold.
ALTER TABLE tenants ADD COLUMN erased_position bigint;
