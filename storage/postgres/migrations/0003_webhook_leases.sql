-- Schema version 3: a webhook's flow control owned by one node at a time (docs/cluster.md,
-- "Ordering and flow control across nodes").
--
-- 1. webhook_leases: one row per webhook a node has delivered for. `owner` and `lease_until` say
--    which node delivers the webhook's deliveries and until when, unless it renews; a node claims
--    and is leased deliveries only of webhooks it holds (or takes: owner NULL or lease past).
-- 2. The same row keeps the webhook's failure streak (endpoint health: auto-disable), written by
--    the owner when it changes and read by the node that takes the webhook next.
-- 3. deliveries_webhook_key: ingest looks for an earlier pending delivery of the same webhook and
--    ordering key before it lets its node dispatch a new one at once.

CREATE TABLE webhook_leases (
  webhook_id       hookd_id PRIMARY KEY,
  owner            text,
  lease_until      timestamptz,
  failures         bigint NOT NULL DEFAULT 0,
  first_failure_at timestamptz,
  last_failure_at  timestamptz,
  last_success_at  timestamptz,
  CHECK ((owner IS NULL) = (lease_until IS NULL))
);

CREATE INDEX deliveries_webhook_key ON deliveries (webhook_id, ordering_key)
  WHERE ordering_key IS NOT NULL;
