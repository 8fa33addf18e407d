-- Schema version 5: claims that start from the webhooks a node holds or can take (docs/cluster.md,
-- "Claims and leases").
--
-- A claim used to walk the pending deliveries in due order and skip, row by row, those of the
-- webhooks other nodes hold: a large backlog held by one node made every other node's claim read
-- it. Claims now list the webhooks that have pending deliveries (one index probe per webhook),
-- keep those this node holds or may take, and read each one's due deliveries in due order from
-- this index: what a claim reads follows the webhooks it may work on and what it returns, not
-- the backlog of the webhooks others hold. The index replaces deliveries_due, which only the
-- claims used, so ingest keeps as many indexes to write as before.

DROP INDEX deliveries_due;
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, due_at) WHERE status = 'pending';
